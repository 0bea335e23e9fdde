// The caching routes' store (Redis, standalone or Cluster, with each route's in-process tier; or one in-memory store),
// made on the first caching route over the connection the composer owns, and a RouteCache per caching route.
import { MemoryStore, RedisStore, RouteCache, TieredStore, type CacheEvents, type CacheStore, type StoreHealth } from '../cache/index.js'
import { DEFAULT_MEMORY_STORE_ENTRIES, DEFAULT_REDIS_KEY_PREFIX, type CacheConfig, type RedisConfig, type RouteConfig } from '../config/index.js'
import type { CacheOperation, CacheStoreKind, GatewayMetrics } from '../metrics/index.js'
import type { RedisConnection } from '../redis/index.js'

/** A caching route's cache, and the in-process tier in front of Redis it has of its own. */
export interface RouteCachePart {
  readonly cache: RouteCache
  readonly tier: TieredStore | null
}

export interface RouteCachesOptions {
  /** `redis:` of the config the gateway started with, or null for the in-memory store. */
  readonly redis: RedisConfig | null
  /** The composer's connection to it, made on first call. */
  readonly connection: () => RedisConnection
  readonly events: CacheEvents
  /** The store operations' latency and errors (cache_operation_latency_seconds, cache_errors_total). */
  readonly metrics: GatewayMetrics
  /** @default Date.now */
  readonly now?: () => number
}

export class RouteCaches {
  readonly #options: RouteCachesOptions
  readonly #now: () => number
  #shared: CacheStore | null = null

  constructor (options: RouteCachesOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
  }

  /**
   * Route `route`'s cache (it has a `cache:` block). Its entries are the store's, under its id, so a route that keeps
   * its id keeps them; `previous`, the route's cache before a reload, lends its tier when the tier's settings stayed.
   */
  build (route: RouteConfig, previous: { readonly route: RouteConfig, readonly tier: TieredStore | null } | null): RouteCachePart {
    const shared = this.#store()
    const memory = (route.cache as CacheConfig).memory
    let tier: TieredStore | null = null
    if (memory !== null && this.#options.redis !== null) {
      tier = previous?.tier != null && isSameTier(previous.route, route)
        ? previous.tier
        : new TieredStore(shared, { maxEntries: memory.maxEntries, ttlMs: memory.ttlMs, now: this.#now, onOperation: this.#observe('memory') })
    }
    const keyPrefix = this.#options.redis?.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX
    return { cache: new RouteCache(route, { store: tier ?? shared, keyPrefix, events: this.#options.events, now: this.#now }), tier }
  }

  /** The `redis` health component, or null when the store is in memory (or none was needed yet). */
  health (): StoreHealth | null {
    return this.#options.redis === null || this.#shared === null ? null : this.#shared.health()
  }

  /** Closes the in-memory store; the Redis connection is the composer's to close, a route's tier the route's. */
  async close (): Promise<void> {
    if (this.#options.redis === null) await this.#shared?.close()
  }

  #store (): CacheStore {
    if (this.#shared === null) {
      const { redis } = this.#options
      this.#shared = redis === null
        ? new MemoryStore({ maxEntries: DEFAULT_MEMORY_STORE_ENTRIES, now: this.#now, onOperation: this.#observe('memory') })
        : new RedisStore(this.#options.connection(), { commandTimeoutMs: redis.commandTimeoutMs, onOperation: this.#observe('redis') })
    }
    return this.#shared
  }

  #observe (store: CacheStoreKind) {
    const { metrics } = this.#options
    return (operation: CacheOperation, seconds: number, error?: Error): void => {
      metrics.observeCacheOperation(operation, store, seconds, error !== undefined)
    }
  }
}

function isSameTier (before: RouteConfig, after: RouteConfig): boolean {
  const a = before.cache?.memory
  const b = after.cache?.memory
  return a != null && b != null && a.maxEntries === b.maxEntries && a.ttlMs === b.ttlMs
}
