// The caching routes' store (Redis, standalone or Cluster, with each route's in-process tier; or one in-memory store)
// and a RouteCache per route with a `cache:` block, over the connection the composer owns.
import { MemoryStore, RedisStore, RouteCache, TieredStore, type CacheEvents, type CacheStore, type StoreHealth } from '../cache/index.js'
import {
  DEFAULT_MEMORY_STORE_ENTRIES, DEFAULT_REDIS_KEY_PREFIX, type CacheConfig, type GatewayConfig
} from '../config/index.js'
import type { CacheOperation, CacheStoreKind, GatewayMetrics } from '../metrics/index.js'
import type { RedisConnection } from '../redis/index.js'

/** Every caching route's cache over one shared store, and what the actuator needs of them. */
export interface RouteCaches {
  readonly byRoute: ReadonlyMap<string, RouteCache>
  /** The `redis` health component, or null when the store is in memory. */
  readonly health: () => StoreHealth | null
  /** Deletes what route `routeId` cached, or only entries under `pathPrefix`; returns how many keys went. */
  readonly purge: (routeId: string, pathPrefix?: string) => Promise<number>
  /** Closes the store's tiers; the Redis connection is the composer's to close. */
  readonly close: () => Promise<void>
}

export interface RouteCachesOptions {
  /** The Redis connection of `config.redis`, or null for the in-memory store. */
  readonly connection: RedisConnection | null
  readonly events: CacheEvents
  /** The store operations' latency and errors (cache_operation_latency_seconds, cache_errors_total). */
  readonly metrics: GatewayMetrics
  /** @default Date.now */
  readonly now?: () => number
}

export function buildRouteCaches (config: GatewayConfig, options: RouteCachesOptions): RouteCaches {
  const { connection, events, metrics, now = Date.now } = options
  const cached = config.routes.filter((route) => route.cache !== null)
  if (cached.length === 0) {
    return { byRoute: new Map(), health: () => null, purge: async () => 0, close: async () => {} }
  }
  const observe = (store: CacheStoreKind) => (operation: CacheOperation, seconds: number, error?: Error): void => {
    metrics.observeCacheOperation(operation, store, seconds, error !== undefined)
  }
  const redis = config.redis
  const shared: CacheStore = connection === null || redis === null
    ? new MemoryStore({ maxEntries: DEFAULT_MEMORY_STORE_ENTRIES, now, onOperation: observe('memory') })
    : new RedisStore(connection, { commandTimeoutMs: redis.commandTimeoutMs, onOperation: observe('redis') })
  const keyPrefix = redis?.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX
  const tiers: TieredStore[] = []
  const byRoute = new Map(cached.map((route) => {
    const tier = (route.cache as CacheConfig).memory
    let store = shared
    if (tier !== null && connection !== null) {
      const tiered = new TieredStore(shared, { maxEntries: tier.maxEntries, ttlMs: tier.ttlMs, now, onOperation: observe('memory') })
      tiers.push(tiered)
      store = tiered
    }
    return [route.id, new RouteCache(route, { store, keyPrefix, events, now })]
  }))
  return {
    byRoute,
    health: () => connection === null ? null : shared.health(),
    purge: async (routeId, pathPrefix) => await (byRoute.get(routeId) as RouteCache).purge(pathPrefix),
    close: async () => {
      await Promise.all(tiers.map(async (tier) => { await tier.close() }))
      // A RedisStore's close would close the shared connection: only a memory store is closed here.
      if (connection === null) await shared.close()
    }
  }
}
