// Drift guard: dashboards/*.json are exactly what the builders make today, and nothing at runtime loads the builders.
import { readdir, readFile } from 'node:fs/promises'
import t from 'tap'
import { buildDashboards, dashboardFileName, renderDashboard } from '../../../src/dashboards/index.js'

const root = new URL('../../../', import.meta.url)

t.test('each committed dashboard is what its builder makes', async (t) => {
  for (const dashboard of buildDashboards()) {
    const name = dashboardFileName(dashboard)
    const committed = await readFile(new URL(`dashboards/${name}`, root), 'utf8').catch(() => '(missing)')
    t.equal(committed, renderDashboard(dashboard), `dashboards/${name} is stale: run \`npm run dashboards\``)
  }
})

t.test('no committed dashboard lacks a builder', async (t) => {
  const files = (await readdir(new URL('dashboards/', root))).filter((name) => name.endsWith('.json')).sort()
  t.same(files, buildDashboards().map(dashboardFileName).sort(), 'an orphan would still be provisioned: run `npm run dashboards`')
})

t.test('the builders run only at dev time: no runtime module imports them or the SDK', async (t) => {
  // @grafana/grafana-foundation-sdk is a devDependency: an install without dev dependencies must still start.
  const sources = (await readdir(new URL('src/', root), { recursive: true }))
    .filter((file) => file.endsWith('.ts') && !file.startsWith('dashboards'))
  t.ok(sources.length > 20, 'read the source tree')
  for (const file of sources) {
    const text = await readFile(new URL(`src/${file}`, root), 'utf8')
    t.notMatch(text, /from '(@grafana\/|[./]*dashboards\/)/, `src/${file}`)
  }
})
