// Writes dashboards/<uid>.json from the dashboard builders: `npm run dashboards` (it builds dist/ first).
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { buildDashboards, dashboardFileName, renderDashboard } from '../dist/dashboards/index.js'

const folder = new URL('../dashboards/', import.meta.url)
const written = new Set()
for (const dashboard of buildDashboards()) {
  const name = dashboardFileName(dashboard)
  const file = new URL(name, folder)
  const next = renderDashboard(dashboard)
  const current = await readFile(file, 'utf8').catch(() => null)
  written.add(name)
  if (current === next) {
    console.log(`dashboards/${name}: up to date`)
  } else {
    await writeFile(file, next)
    console.log(`dashboards/${name}: written`)
  }
}
// A renamed or dropped dashboard must not live on as a stale file that provisioning keeps loading.
for (const name of await readdir(folder)) {
  if (name.endsWith('.json') && !written.has(name)) {
    await rm(new URL(name, folder))
    console.log(`dashboards/${name}: removed, no builder makes it`)
  }
}
