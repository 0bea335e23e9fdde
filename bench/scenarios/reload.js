// Scenario: pass-through on a gateway of 100 routes reloaded every second (SIGHUP, alternating two files that add,
// remove and change routes), against the same gateway left alone: what a reload costs the requests around it.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { breakwater } from '../lib/candidates.js'
import { passthrough } from './passthrough.js'

/** Routes besides the measured one: a reload rebuilds the table of all of them. */
const OTHER_ROUTES = 99
/** How often the reloading candidate is reloaded (ms). */
const RELOAD_INTERVAL_MS = 1_000

/** @param {Record<string, any>} services */
const routes = (services) => Array.from({ length: OTHER_ROUTES }, (_, i) =>
  `  - id: r${i}\n    prefix: /r${i}\n    upstream: ${services.origin.url}\n`).join('') +
  `  - id: origin\n    prefix: /\n    upstream: ${services.origin.url}\n`

/**
 * The gateway, SIGHUP'd every RELOAD_INTERVAL_MS with its file alternating between the config it started with and
 * one where a route is added, one removed and one changed (its timeout); the measured route stays as it is.
 * @returns {import('../lib/candidates.js').Candidate}
 */
function reloading () {
  const id = 'breakwater-reloading'
  const inner = breakwater({ id, label: `Breakwater, ${OTHER_ROUTES + 1} routes, reloaded every second (SIGHUP)`, routes })
  return {
    ...inner,
    async start (ctx, services) {
      const instance = await inner.start(ctx, services)
      const file = join(ctx.dir, `${id}.yaml`)
      const original = readFileSync(file, 'utf8')
      const other = original
        .replace('  - id: r0\n', '  - id: added\n')
        .replace(/( {2}- id: r1\n {4}prefix: \/r1\n {4}upstream: \S+\n)/, '$1    timeout: 9s\n')
      if (other === original) throw new Error('reload scenario: the alternate config is the same as the first')
      let flip = false
      const timer = setInterval(() => {
        flip = !flip
        writeFileSync(file, flip ? other : original)
        process.kill(instance.cpuPid, 'SIGHUP')
      }, RELOAD_INTERVAL_MS)
      return { ...instance, stop: async () => { clearInterval(timer); await instance.stop() } }
    },
    fromCheckout: undefined
  }
}

/** @type {import('../lib/runner.js').Scenario} */
export const reload = {
  id: 'reload',
  title: `Reload: pass-through GET / with ${OTHER_ROUTES + 1} routes, reloaded every second, against the same gateway left alone`,
  // The pass-through's request, answer and origin.
  path: passthrough.path,
  expect: passthrough.expect,
  setup: passthrough.setup,
  candidates: [
    { ...breakwater({ id: 'breakwater', label: `Breakwater, ${OTHER_ROUTES + 1} routes, never reloaded (baseline)`, routes }), baseline: true },
    reloading()
  ],
  targets: [
    { candidate: 'breakwater-reloading', label: 'issue 16', maxP99Ratio: 1.2 }
  ],
  notes: [
    `Both run \`node bin/breakwater.js start --config FILE\` with ${OTHER_ROUTES} routes /r0../r${OTHER_ROUTES - 1} and the measured route \`prefix: /\`, ` +
    'all to the nginx origin, default keys otherwise (access log on). The reloading one gets SIGHUP every second, its file ' +
    'alternating between that config and one with r0 replaced by another route and r1\'s timeout changed, so each reload ' +
    'adds, removes and changes a route (and retires their runtimes) while the measured route keeps its runtime and pool.'
  ]
}
