// Scenario: GET / through a Breakwater route whose circuit breaker is open (503 at once), against the bare proxy passing through to nginx.
import { randomBytes } from 'node:crypto'
import { bareFastifyProxy, breakwater, nodeFloor } from '../lib/candidates.js'
import { freePort, postJson, probe } from '../lib/net.js'
import { startNginx } from '../lib/nginx.js'

/** The management token of the generated configs: FORCE_OPEN is a POST under /actuator, which needs it. */
const TOKEN = randomBytes(16).toString('hex')

/** What Breakwater answers while the route's breaker is open: 503 problem+json with Retry-After. */
const OPEN_ANSWER = { status: 503, contentType: 'application/problem+json', headers: ['retry-after'] }

const READY = '/actuator/health/readiness'

/**
 * Breakwater with one route to the origin whose breaker is forced open through the actuator, before the probe and the warm-up.
 * @param {string} id
 * @param {string} label
 * @param {Record<string, string | number | boolean>} [server]
 */
function forcedOpen (id, label, server = {}) {
  return breakwater({
    id,
    label,
    server,
    extraYaml: `management:\n  token: ${TOKEN}\n`,
    routes: (services) => `  - id: origin\n    prefix: /\n    upstream: ${services.origin.url}\n`,
    readyPath: READY,
    async afterStart (url) {
      await postJson(`${url}/actuator/circuitbreakers/origin`, { updateState: 'FORCE_OPEN' }, { authorization: `Bearer ${TOKEN}` })
    },
    expect: OPEN_ANSWER,
    allowNon2xx: true
  })
}

/** @type {import('../lib/runner.js').Scenario} */
export const breakerOpen = {
  id: 'breaker-open',
  title: 'Breaker OPEN fast-fail: GET / answered 503 by Breakwater\'s open breaker, against the bare proxy passing through to nginx (200, 1 KiB)',
  path: '/',
  // The baseline's answer; Breakwater's candidates carry their own.
  expect: { status: 200, bodyBytes: 1024 },
  async setup (ctx) {
    const origin = await startNginx({ dir: ctx.dir, nginx: ctx.tools.nginx, bodyBytes: 1024 })
    // A loopback port bound and closed again: nothing listens there, so a call to it is refused at once.
    const closedPort = await freePort()
    return { services: { origin, closedPort }, stop: origin.stop }
  },
  candidates: [
    bareFastifyProxy(),
    forcedOpen('breakwater', 'Breakwater, breaker FORCED_OPEN through the actuator (503)'),
    breakwater({
      id: 'breakwater-tripped',
      label: 'Breakwater, breaker OPEN after a connect error (503)',
      routes: (services) => `  - id: origin\n    prefix: /\n    upstream: http://127.0.0.1:${services.closedPort}\n` +
        '    breaker: {failureThreshold: 1, recoveryTimeout: 1h}\n',
      readyPath: READY,
      // The one call that opens the breaker for an hour, before the probe and the warm-up.
      async afterStart (url) {
        const first = await probe(`${url}/`)
        if (first.status !== 502) throw new Error(`breakwater-tripped: the call to the closed port answered ${first.status}, not 502`)
      },
      expect: OPEN_ANSWER,
      allowNon2xx: true
    }),
    forcedOpen('breakwater-no-access-log', 'Breakwater, breaker FORCED_OPEN, `accessLog: false` (503)', { accessLog: false }),
    nodeFloor()
  ],
  targets: [
    { candidate: 'breakwater', label: 'issue 3', minRpsRatio: 3, maxP99Ms: 2 },
    { candidate: 'breakwater-tripped', label: 'issue 3', minRpsRatio: 3, maxP99Ms: 2 }
  ],
  notes: [
    'Breakwater runs `node bin/breakwater.js start --config FILE` with one route `prefix: /` and default keys otherwise (breaker mode enforce, ' +
    'metrics, access log on). `breakwater`: the route goes to the nginx origin and its breaker is forced open with ' +
    '`POST /actuator/circuitbreakers/origin {"updateState":"FORCE_OPEN"}` (bearer token) before the probe and the warm-up. ' +
    '`breakwater-tripped`: the route goes to a closed loopback port with `breaker: {failureThreshold: 1, recoveryTimeout: 1h}`; ' +
    'one GET before the probe is refused (502) and opens it. Both then answer every request 503 problem+json with Retry-After ' +
    '(checked by the probe; any 2xx or 3xx answer during the runs is counted as an error). `breakwater-no-access-log`: ' +
    '`breakwater` with `server.accessLog: false`. `node-floor` (bench/node-floor.js): a bare node:http server answering ' +
    'the same 503 body with nothing else to do, the floor of any Node fast-fail on this machine. The baseline proxies to nginx (200, 1 KiB).'
  ]
}
