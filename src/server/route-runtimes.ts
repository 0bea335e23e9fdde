// Each route's runtime, built from its config (its breaker, upstream pools and retries, cache, bulk coalescing), and
// rebuilt at a reload only for what changed: what stays keeps its state, what goes is retired once its last request ended.
import { isDeepStrictEqual } from 'node:util'
import type { BulkRoute, BulkRouteFactory } from '../bulk/index.js'
import type { RouteCache, TieredStore } from '../cache/index.js'
import type { GatewayConfig, RetryConfig, RouteConfig } from '../config/index.js'
import type { GatewayMetrics } from '../metrics/index.js'
import { InFlight, type RouteRuntime } from '../pipeline/index.js'
import { RouteForwarder, type RetryPolicy, type UpstreamPools } from '../proxy/index.js'
import { backoffMs, isRetryableMethod, parseRetryAfterSeconds, shouldRetry, type BreakerRegistry, type CircuitBreaker } from '../resilience/index.js'
import type { RouteCaches } from './caches.js'
import { declareRouteMetrics } from './observe.js'

/** A route's runtime with its parts as the composer holds them: to close, flush and retire. */
export interface RouteParts extends RouteRuntime {
  readonly upstream: RouteForwarder
  readonly cache: RouteCache | null
  readonly bulk: BulkRoute | null
  readonly tier: TieredStore | null
  /** The server settings its upstream was built with. */
  readonly settings: ForwardSettings
}

/** The server settings a route's upstream takes. */
interface ForwardSettings {
  readonly trustProxy: boolean
  readonly sendTimeoutMs: number
}

/** What a new config changed, by route id, in config order (removed in the old order). */
export interface RoutesChange {
  readonly added: readonly string[]
  readonly changed: readonly string[]
  readonly removed: readonly string[]
}

export interface RouteRuntimesDeps {
  readonly breakers: BreakerRegistry
  readonly pools: UpstreamPools
  readonly caches: RouteCaches
  readonly bulk: BulkRouteFactory
  readonly metrics: GatewayMetrics
  readonly log: { error: (fields: object, message: string) => void }
  /** How long a retired runtime's tunnels and batches may take: `server.shutdownTimeout`, as the process started. */
  readonly shutdownTimeoutMs: number
}

export class RouteRuntimes {
  readonly #deps: RouteRuntimesDeps
  #current: ReadonlyMap<string, RouteParts> = new Map()
  /** Retired runtimes still finishing their requests, batches and tunnels. */
  readonly #retiring = new Set<Promise<void>>()
  #started = false
  #closing = false

  constructor (deps: RouteRuntimesDeps) {
    this.#deps = deps
  }

  /** The runtimes served now, by route id. */
  get current (): ReadonlyMap<string, RouteParts> {
    return this.#current
  }

  /**
   * Makes the runtimes of `config`'s routes the current ones and returns them, for the pipeline to serve. A route
   * equal to its runtime's (and under the same server settings) keeps the runtime whole; a changed one gets a new
   * runtime that keeps its breaker when the breaker's settings stayed (the registry's rule), its cache entries (the
   * store's, by route id) and its pools (shared by origin). Every runtime replaced or removed is retired.
   */
  apply (config: GatewayConfig): { readonly runtimes: readonly RouteParts[], readonly change: RoutesChange } {
    const { breakers, metrics } = this.#deps
    const settings: ForwardSettings = { trustProxy: config.server.trustProxy, sendTimeoutMs: config.server.sendTimeoutMs }
    const previous = this.#current
    breakers.update(config.routes)
    const added: string[] = []
    const changed: string[] = []
    const next = new Map<string, RouteParts>()
    for (const route of config.routes) {
      const old = previous.get(route.id)
      if (old !== undefined && isDeepStrictEqual(old.route, route) && isDeepStrictEqual(old.settings, settings)) {
        next.set(route.id, old)
        continue
      }
      if (old === undefined) added.push(route.id)
      else if (!isDeepStrictEqual(old.route, route)) changed.push(route.id)
      next.set(route.id, this.#build(route, settings, old ?? null))
    }
    const removed = [...previous.keys()].filter((id) => !next.has(id))
    this.#current = next
    declareRouteMetrics(config.routes.filter((route) => next.get(route.id) !== previous.get(route.id)), metrics)
    for (const old of previous.values()) {
      const successor = next.get(old.route.id)
      if (successor !== old) this.#retire(old, successor ?? null, this.#deps.shutdownTimeoutMs)
    }
    return { runtimes: [...next.values()], change: { added, changed, removed } }
  }

  /** The gateway is ready: the bulk routes' background work begins. */
  start (): void {
    this.#started = true
    for (const parts of this.#current.values()) parts.bulk?.start()
  }

  /** Shutdown began: open tunnels end, and waiting batches go now rather than at maxWait. */
  flush (): void {
    this.#closing = true
    for (const parts of this.#current.values()) {
      parts.upstream.endTunnels()
      parts.bulk?.flush()
    }
  }

  /**
   * Once the port has drained: settles the accepted bulk items within the shutdown timeout, waits for the retired
   * runtimes, then closes the pools (aborting them when a batch was still in flight at the deadline) and the cache tiers.
   */
  async close (): Promise<void> {
    const timeoutMs = this.#deps.shutdownTimeoutMs
    const current = [...this.#current.values()]
    const settled = await Promise.all(current.map(async (parts) => await (parts.bulk?.close(timeoutMs) ?? true)))
    await Promise.all(this.#retiring)
    if (settled.includes(false)) await this.#deps.pools.destroy()
    else await Promise.all(current.map(async (parts) => { await parts.upstream.close() }))
    await Promise.all(current.map(async (parts) => { await parts.tier?.close() }))
  }

  #build (route: RouteConfig, settings: ForwardSettings, old: RouteParts | null): RouteParts {
    const { breakers, pools, caches, bulk, metrics } = this.#deps
    const breaker = breakers.get(route.id) as CircuitBreaker
    const upstream = new RouteForwarder(route, {
      ...settings,
      guard: breaker,
      retry: route.retry.retries === 0 ? undefined : retryPolicy(route.id, route.retry, metrics),
      pools
    })
    const cache = route.cache === null ? null : caches.build(route, old)
    const parts: RouteParts = {
      route,
      requests: new InFlight(),
      breaker,
      upstream,
      cache: cache?.cache ?? null,
      tier: cache?.tier ?? null,
      bulk: route.bulk === null ? null : bulk.build(route, async (request) => await upstream.send(request)),
      fallbackBody: route.breaker.fallback === null ? null : Buffer.from(route.breaker.fallback.body),
      settings
    }
    // A new async coalescer of a route whose old one still runs starts once that one closed: both would read the
    // same stream's pending items.
    if (this.#started && old?.bulk == null) parts.bulk?.start()
    return parts
  }

  /**
   * A runtime no longer served: its waiting batch goes now; once its last request ended, its coalescer settles what
   * it accepted, its tunnels close (or are ended after `timeoutMs`), its pools and tier are let go.
   */
  #retire (old: RouteParts, successor: RouteParts | null, timeoutMs: number): void {
    old.bulk?.flush()
    const retired = (async () => {
      await old.requests.idle()
      await old.bulk?.close(timeoutMs)
      if (this.#started && !this.#closing && successor !== null && successor.bulk !== null && old.bulk !== null) successor.bulk.start()
      await old.upstream.drainTunnels(timeoutMs)
      await old.upstream.close()
      if (old.tier !== null && old.tier !== successor?.tier) await old.tier.close()
    })()
    const settled = retired.catch((err: unknown) => {
      this.#deps.log.error({ err, route: old.route.id }, `route ${old.route.id}: closing its replaced runtime failed`)
    }).finally(() => this.#retiring.delete(settled))
    this.#retiring.add(settled)
  }
}

/** The route's retry policy for the proxy: resilience/'s rules, counted in resilience4j_retry_calls_total. */
function retryPolicy (name: string, config: RetryConfig, metrics: GatewayMetrics): RetryPolicy {
  return {
    retries: config.retries,
    appliesTo: isRetryableMethod,
    retryable: (failure) => shouldRetry(config, failure),
    delayMs: (attempt, retryAfter) => backoffMs(config, attempt, Math.random, parseRetryAfterSeconds(retryAfter)),
    onOutcome: (succeeded, retried) => {
      metrics.countRetry(name, `${succeeded ? 'successful' : 'failed'}_${retried ? 'with' : 'without'}_retry`)
    }
  }
}
