// A gateway for cache tests: a store (memory, Redis, Cluster), routes, and a clock the test moves; answers read whole.
import type { Test } from 'tap'
import { request } from 'undici'
import { startGateway } from './gateway.js'
import { parsePrometheus, series } from './prometheus.js'
import { startRedis, startRedisCluster } from './redis.js'

/** The management token of every cache test gateway (purges and health details need it). */
export const CACHE_TEST_TOKEN = 'cache-test-token'

export interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

export const call = async (url: string, init: Parameters<typeof request>[1] = {}): Promise<Answer> => {
  const res = await request(url, init)
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) }
}

export interface CacheGateway {
  readonly url: string
  get: (path: string, headers?: Record<string, string>) => Promise<Answer>
  /** The sum of the series of `name` with `labels`: 0 when none is exposed yet (a labelled counter never counted). */
  metric: (name: string, labels?: Record<string, string>) => Promise<number>
}

/** The `redis:` block of a store to test on, or '' for the in-memory store. */
export type Store = (t: Test) => Promise<string>

export const STORES: ReadonlyArray<readonly [string, Store]> = [
  ['memory', async () => ''],
  ['redis', async (t) => `redis:\n  url: ${(await startRedis(t)).url}\n`],
  ['cluster', async (t) => `redis:\n  cluster: [${(await startRedisCluster(t)).nodes.join(', ')}]\n`]
]

/** A caching route `c` on `/` to `upstream`, with `cache` as its cache block and `extra` route keys. */
export const cacheRoute = (upstream: string, cache = '{}', extra = ''): string =>
  `  - id: c\n    prefix: /\n    upstream: ${upstream}\n    cache: ${cache}\n${extra}`

let prefixes = 0

/**
 * A gateway on `store` (the `redis:` block, or '') with `routes`, its breakers and caches on `now`. Commands get a
 * second, not 100 ms: these tests are about what the cache answers, on a machine busy running them.
 */
export async function startCacheGateway (t: Test, store: string, routes: string, now: () => number = Date.now, commandTimeout = '1s'): Promise<CacheGateway> {
  // Each gateway writes under its own prefix: the Redis fixtures are shared by the tests of one store.
  const redis = store === '' ? '' : `${store}  keyPrefix: "t${++prefixes}:"\n  commandTimeout: ${commandTimeout}\n`
  const { url } = await startGateway(t, `management:\n  token: ${CACHE_TEST_TOKEN}\n${redis}routes:\n${routes}`, { now })
  return {
    url,
    get: async (path, headers = {}) => await call(url + path, { headers }),
    metric: async (name, labels) => series(parsePrometheus((await call(`${url}/actuator/prometheus`)).body.toString()), name, labels)
      .reduce((sum, sample) => sum + sample.value, 0)
  }
}
