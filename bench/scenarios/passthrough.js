// Scenario: GET / through each proxy to nginx answering 200 with a fixed 1 KiB body (the forwarding path alone).
import { bareFastifyProxy, breakwater, originDirect } from '../lib/candidates.js'
import { startNginx } from '../lib/nginx.js'

/** @type {import('../lib/runner.js').Scenario} */
export const passthrough = {
  id: 'passthrough',
  title: 'Pass-through: GET / to an nginx origin answering 200 with 1 KiB',
  path: '/',
  expect: { status: 200, bodyBytes: 1024 },
  async setup (ctx) {
    const origin = await startNginx({ dir: ctx.dir, nginx: ctx.tools.nginx, bodyBytes: 1024 })
    return { services: { origin }, stop: origin.stop }
  },
  candidates: [
    bareFastifyProxy(),
    breakwater({ id: 'breakwater', label: 'Breakwater, default config (access log on, stdout to /dev/null)' }),
    breakwater({ id: 'breakwater-no-access-log', label: 'Breakwater, `accessLog: false`', server: { accessLog: false } }),
    originDirect()
  ],
  targets: [
    { candidate: 'breakwater', label: 'issue 2', minRpsRatio: 0.95, maxP99Ratio: 1.1 },
    { candidate: 'breakwater-no-access-log', label: 'issue 2', minRpsRatio: 0.95, maxP99Ratio: 1.1 },
    // Every route now has a circuit breaker (mode enforce) and per-request metrics: they must not cost a tenth of a hop.
    { candidate: 'breakwater', label: 'issue 3, breaker and metrics on', minRpsRatio: 0.9 }
  ],
  notes: [
    'Breakwater runs `node bin/breakwater.js start --config FILE` with one route `prefix: /` and default keys otherwise (logLevel info; ' +
    'the route\'s circuit breaker in mode enforce and the per-request metrics, as every route has them). ' +
    'The nginx row is wrk straight at the origin, both on CPU 1: its CPU figure is the nginx worker\'s.'
  ]
}
