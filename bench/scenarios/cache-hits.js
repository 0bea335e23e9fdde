// Scenario: GET / answered from Breakwater's cache (memory, Redis, Redis behind the in-process tier), against the bare proxy passing through to nginx.
import { bareFastifyProxy, breakwater, nodeFloor } from '../lib/candidates.js'
import { startNginx } from '../lib/nginx.js'
import { startRedis } from '../lib/redis.js'

/** A cached answer: the origin's 1 KiB, with the cache's own headers. */
const HIT = { status: 200, bodyBytes: 1024, headers: ['x-cache', 'age'] }

/** One route to the origin with a cache block (the origin's max-age=60 sets the freshness). */
const cachedRoute = (/** @type {string} */ cache) => (/** @type {Record<string, any>} */ services) =>
  `  - id: origin\n    prefix: /\n    upstream: ${services.origin.url}\n    cache: ${cache}\n`

const redisYaml = (/** @type {Record<string, any>} */ services) => `redis:\n  url: ${services.redis.url}\n`

/** @type {import('../lib/runner.js').Scenario} */
export const cacheHits = {
  id: 'cache-hits',
  title: 'Cache hits: GET / of a 1 KiB answer with Cache-Control: max-age=60 from Breakwater\'s cache, against the bare proxy passing through to nginx',
  path: '/',
  expect: { status: 200, bodyBytes: 1024 },
  async setup (ctx) {
    const origin = await startNginx({ dir: ctx.dir, nginx: ctx.tools.nginx, bodyBytes: 1024, headers: { 'Cache-Control': 'max-age=60' } })
    try {
      const redis = await startRedis({ dir: ctx.dir, redisServer: ctx.tools.redisServer })
      return {
        services: { origin, redis },
        stop: async () => {
          await origin.stop()
          await redis.stop()
        }
      }
    } catch (err) {
      await origin.stop()
      throw err
    }
  },
  candidates: [
    bareFastifyProxy(),
    breakwater({ id: 'breakwater-memory', label: 'Breakwater, hits from the in-memory store (no redis:)', routes: cachedRoute('{}'), expect: HIT }),
    breakwater({
      id: 'breakwater-redis',
      label: 'Breakwater, hits from Redis (one MGET per request, no in-process tier)',
      extraYaml: redisYaml,
      routes: cachedRoute('{}'),
      expect: HIT
    }),
    breakwater({
      id: 'breakwater-redis-tier',
      label: 'Breakwater, hits from Redis behind the in-process tier (`memory: {ttl: 1s}`)',
      extraYaml: redisYaml,
      routes: cachedRoute('{memory: {maxEntries: 10000, ttl: 1s}}'),
      expect: HIT
    }),
    nodeFloor('cached')
  ],
  targets: [
    { candidate: 'breakwater-memory', label: 'issue 4', minRpsRatio: 3 },
    { candidate: 'breakwater-redis', label: 'issue 4', minRpsRatio: 2 },
    { candidate: 'breakwater-redis-tier', label: 'issue 4', minRpsRatio: 3 }
  ],
  notes: [
    'nginx answers 200 with 1 KiB and `Cache-Control: max-age=60`; the probe before each measurement stores the answer, ' +
    'so every measured request is a hit (X-Cache: HIT). redis-server runs on the load CPU, beside nginx and wrk: its CPU ' +
    'is not in the CPU-per-request figure. Breakwater runs its default config otherwise (access log on, metrics, breaker). ' +
    '`node-floor` (bench/node-floor.js --answer cached): a bare node:http server answering the same 1 KiB with a hit\'s ' +
    'headers from a Buffer in memory, with no routing, lookup, metrics or log: what no Node cache hit can beat.'
  ]
}
