// Scenario `soak`: memory and descriptors of one Breakwater process per kind of answer, after a warm-up and after 2M requests, access log to a file.
import { freePort, probe } from '../lib/net.js'
import { startNginx } from '../lib/nginx.js'

/**
 * @typedef {object} SoakKind
 * @property {string} id
 * @property {string} label
 * @property {number} status  what every answer must be
 * @property {(services: Record<string, any>) => string} routes  the YAML of the `routes:` list
 * @property {(url: string) => Promise<void>} [afterStart]  once ready, before the warm-up
 */

/** @type {{ id: string, title: string, kinds: SoakKind[], setup: (ctx: import('../lib/candidates.js').RunContext) => Promise<{ services: Record<string, any>, stop: () => Promise<void> }>, notes: string[] }} */
export const soak = {
  id: 'soak',
  title: 'Soak: RSS, external memory and open descriptors of Breakwater after a warm-up and after N requests of each kind, access log on, to a file',
  kinds: [
    {
      id: 'pass-through',
      label: 'pass-through to nginx (200, 1 KiB)',
      status: 200,
      routes: (services) => `  - id: origin\n    prefix: /\n    upstream: ${services.origin.url}\n`
    },
    {
      id: 'cache-hits',
      label: 'cache hits, in-memory store (200, 1 KiB)',
      status: 200,
      routes: (services) => `  - id: origin\n    prefix: /\n    upstream: ${services.origin.url}\n    cache: {}\n`
    },
    {
      id: 'upstream-down-502',
      label: 'upstream refusing connections, breaker off (502)',
      status: 502,
      routes: (services) => `  - id: down\n    prefix: /\n    upstream: http://127.0.0.1:${services.closedPort}\n    breaker: {mode: off}\n`
    },
    {
      id: 'breaker-open-503',
      label: 'breaker opened by a refused connect, fast-fail (503)',
      status: 503,
      routes: (services) => `  - id: down\n    prefix: /\n    upstream: http://127.0.0.1:${services.closedPort}\n` +
        '    breaker: {failureThreshold: 1, recoveryTimeout: 1h}\n',
      async afterStart (url) {
        const first = await probe(`${url}/`)
        if (first.status !== 502) throw new Error(`soak: the call to the closed port answered ${first.status}, not 502`)
      }
    }
  ],
  async setup (ctx) {
    const origin = await startNginx({ dir: ctx.dir, nginx: ctx.tools.nginx, bodyBytes: 1024, headers: { 'Cache-Control': 'max-age=60' } })
    // A loopback port bound and closed again: nothing listens there, so a call to it is refused at once.
    const closedPort = await freePort()
    return { services: { origin, closedPort }, stop: origin.stop }
  },
  notes: [
    'Each kind runs in a fresh `node bin/breakwater.js start --config FILE` pinned to CPU 0, default keys except the route\'s ' +
    '(access log on, logLevel info), stdout appended to a file in the run\'s temp dir. wrk -c64 on CPU 1: a warm-up (a tenth of the count, at least 50k), then runs ' +
    'of at most 30 s until the requests are reached. "warm" is read 10 s after the warm-up\'s load stops, "after" 10 s after the ' +
    'last run (the log\'s batches flushed, the clients\' and idle upstream connections closed), descriptors first, then after a full GC (`HeapProfiler.collectGarbage` ' +
    'through the inspector, `--inspect` on a free port): RSS from /proc/PID/status, external memory ' +
    '(Buffers, `process.memoryUsage().external`) from `nodejs_external_memory_bytes` on /actuator/prometheus, open descriptors ' +
    'from /proc/PID/fd. Target (issue 14): growth at most 20 MiB per kind, descriptors back to their warm-up count.'
  ]
}
