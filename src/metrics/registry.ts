// GatewayMetrics: the prom-client registry with the definitions, cheap per-request recording, and breaker gauges read at scrape time.
import {
  collectDefaultMetrics, Counter, Gauge, Histogram, openMetricsContentType, prometheusContentType, Registry,
  type RegistryContentType
} from 'prom-client'
import type { BreakerSnapshot } from '../resilience/types.js'
import { BREAKER_STATES } from '../resilience/types.js'
import {
  BREAKER_CALL_KINDS, CACHE_OPERATIONS, METRICS, RETRY_CALL_KINDS, type BreakerCallKind, type CacheOperation, type CacheStoreKind,
  type MetricDefinition, type Outcome, type RetryCallKind, type StaleReason
} from './definitions.js'

/** The `uri` of a request that matched no route, as Spring tags an unmapped 404. */
export const NOT_FOUND_URI = 'NOT_FOUND'
/** The `exception` of a request that ended without one, as Spring tags it. */
export const NO_EXCEPTION = 'None'

export const PROMETHEUS_CONTENT_TYPE = prometheusContentType
export const OPENMETRICS_CONTENT_TYPE = openMetricsContentType

/** The breakers to report, read at every scrape (so their gauges cost nothing per request). */
export type BreakerSnapshotSource = () => Iterable<BreakerSnapshot>

export interface GatewayMetricsOptions {
  /** Breakers whose state and rates are exported. Default: none (see `setBreakerSource`). */
  readonly breakers?: BreakerSnapshotSource
  /**
   * prom-client's process and Node.js metrics.
   * @default true
   */
  readonly defaultMetrics?: boolean
}

/** Spring's Outcome.forStatus. */
export function outcomeOf (status: number): Outcome {
  if (status >= 100 && status < 200) return 'INFORMATIONAL'
  if (status >= 200 && status < 300) return 'SUCCESS'
  if (status >= 300 && status < 400) return 'REDIRECTION'
  if (status >= 400 && status < 500) return 'CLIENT_ERROR'
  if (status >= 500 && status < 600) return 'SERVER_ERROR'
  return 'UNKNOWN'
}

type CounterChild = ReturnType<Counter<string>['labels']>
type HistogramChild = ReturnType<Histogram<string>['labels']>

/** A tree of maps, one level per label, ending in a prom-client child: label lookups without building strings. */
class ChildCache<T> {
  private readonly root = new Map<unknown, unknown>()
  constructor (private readonly create: (values: readonly string[]) => T) {}

  get (values: readonly (string | number)[]): T {
    let level = this.root
    const last = values.length - 1
    for (let i = 0; i < last; i++) {
      let next = level.get(values[i]) as Map<unknown, unknown> | undefined
      if (next === undefined) {
        next = new Map()
        level.set(values[i], next)
      }
      level = next
    }
    let child = level.get(values[last]) as T | undefined
    if (child === undefined) {
      child = this.create(values.map(String))
      level.set(values[last], child)
    }
    return child
  }
}

export class GatewayMetrics {
  readonly registry = new Registry<RegistryContentType>()
  private breakers: BreakerSnapshotSource
  private readonly transactions: ChildCache<CounterChild>
  private readonly requests: ChildCache<HistogramChild>
  private readonly breakerCalls: ChildCache<HistogramChild>
  private readonly breakerCallsHistogram: Histogram<string>
  private readonly notPermitted: ChildCache<CounterChild>
  private readonly retryCalls: ChildCache<CounterChild>
  private readonly cacheHits: ChildCache<CounterChild>
  private readonly cacheMisses: ChildCache<CounterChild>
  private readonly cacheOperations: ChildCache<HistogramChild>
  private readonly cacheStale: ChildCache<CounterChild>
  private readonly cacheBypass: ChildCache<CounterChild>
  private readonly cacheErrors: ChildCache<CounterChild>
  /** Counter names as registered: prom-client strips `_total` from them while rendering OpenMetrics. */
  private readonly counterNames = new Map<{ name: string }, string>()
  private scrapes: Promise<unknown> = Promise.resolve()

  constructor (options: GatewayMetricsOptions = {}) {
    this.breakers = options.breakers ?? (() => [])
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry })

    this.transactions = this.counterCache(METRICS.transactions)
    const requests = this.histogram(METRICS.httpServerRequests)
    this.requests = new ChildCache((values) => requests.labels(...values))
    const breakerCalls = this.histogram(METRICS.breakerCalls)
    this.breakerCallsHistogram = breakerCalls
    this.breakerCalls = new ChildCache((values) => breakerCalls.labels(...values))
    this.notPermitted = this.counterCache(METRICS.breakerNotPermitted)
    this.retryCalls = this.counterCache(METRICS.retryCalls)
    this.cacheHits = this.counterCache(METRICS.cacheHits)
    this.cacheMisses = this.counterCache(METRICS.cacheMisses)
    const cacheOperations = this.histogram(METRICS.cacheOperationLatency)
    this.cacheOperations = new ChildCache((values) => cacheOperations.labels(...values))
    this.cacheStale = this.counterCache(METRICS.cacheStaleServed)
    this.cacheBypass = this.counterCache(METRICS.cacheBypass)
    this.cacheErrors = this.counterCache(METRICS.cacheErrors)

    this.breakerGauge(METRICS.breakerState, (gauge, b) => {
      for (const state of BREAKER_STATES) gauge.set({ name: b.name, state: state.toLowerCase() }, b.state === state ? 1 : 0)
    })
    this.breakerGauge(METRICS.breakerBufferedCalls, (gauge, b) => {
      gauge.set({ name: b.name, kind: 'successful' }, b.bufferedCalls - b.failedCalls)
      gauge.set({ name: b.name, kind: 'failed' }, b.failedCalls)
    })
    this.breakerGauge(METRICS.breakerSlowCalls, (gauge, b) => {
      gauge.set({ name: b.name, kind: 'successful' }, b.slowCalls - b.slowFailedCalls)
      gauge.set({ name: b.name, kind: 'failed' }, b.slowFailedCalls)
    })
    this.breakerGauge(METRICS.breakerFailureRate, (gauge, b) => { gauge.set({ name: b.name }, b.failureRate) })
    this.breakerGauge(METRICS.breakerSlowCallRate, (gauge, b) => { gauge.set({ name: b.name }, b.slowCallRate) })

    for (const metric of this.registry.getMetricsAsArray() as unknown as Array<{ type: string, name: string }>) {
      if (metric.type === 'counter') this.counterNames.set(metric, metric.name)
    }
  }

  /**
   * Exports breaker `name`'s call series at zero before its first call, as Resilience4j registers its meters, so
   * rate() and absent() see the series from the first scrape. With `retries`, its retry series too.
   */
  declareBreaker (name: string, retries: boolean): void {
    for (const kind of BREAKER_CALL_KINDS) this.breakerCallsHistogram.zero({ name, kind })
    this.notPermitted.get([name, 'not_permitted']).inc(0)
    if (retries) for (const kind of RETRY_CALL_KINDS) this.retryCalls.get([name, kind]).inc(0)
  }

  /** Exports route `name`'s hit and miss series at zero before its first request, and the error series once. */
  declareCache (route: string): void {
    this.cacheHits.get([route]).inc(0)
    this.cacheMisses.get([route]).inc(0)
    for (const operation of CACHE_OPERATIONS) this.cacheErrors.get([operation]).inc(0)
  }

  /** A request answered from the cache: fresh, or after a 304 revalidation. */
  countCacheHit (route: string): void {
    this.cacheHits.get([route]).inc()
  }

  /** A cacheable request the cache could not answer. */
  countCacheMiss (route: string): void {
    this.cacheMisses.get([route]).inc()
  }

  /** A stale entry served instead of waiting for, or instead of, the upstream. */
  countStaleServed (route: string, reason: StaleReason): void {
    this.cacheStale.get([route, reason]).inc()
  }

  /** A request on a caching route that went past the cache, and why. */
  countCacheBypass (route: string, reason: string): void {
    this.cacheBypass.get([route, reason]).inc()
  }

  /** One store operation; with `failed`, it is counted in cache_errors_total too. */
  observeCacheOperation (operation: CacheOperation, store: CacheStoreKind, seconds: number, failed: boolean): void {
    this.cacheOperations.get([operation, store]).observe(seconds)
    if (failed) this.cacheErrors.get([operation]).inc()
  }

  /** Replaces the breakers reported (the resilience registry, once it is built). */
  setBreakerSource (source: BreakerSnapshotSource): void {
    this.breakers = source
  }

  /**
   * One finished request. `route`: the id of the route that matched (counted in transactions_total), or null.
   * `uri`: the route's prefix, or NOT_FOUND_URI. `exception`: the error code it ended with, or NO_EXCEPTION.
   */
  observeRequest (route: string | null, method: string, uri: string, status: number, seconds: number, exception: string = NO_EXCEPTION): void {
    if (route !== null) this.transactions.get([route, method, status]).inc()
    this.requests.get([method, uri, status, outcomeOf(status), exception]).observe(seconds)
  }

  /** One call through breaker `name` that was let through: successful, failed, or ignored (counted as neither). */
  observeBreakerCall (name: string, kind: BreakerCallKind, seconds: number): void {
    this.breakerCalls.get([name, kind]).observe(seconds)
  }

  /** A call breaker `name` refused (OPEN or FORCED_OPEN, or HALF_OPEN with its trial calls taken). */
  countNotPermitted (name: string): void {
    this.notPermitted.get([name, 'not_permitted']).inc()
  }

  /** A request on a route with retries, once its last attempt is done. */
  countRetry (name: string, kind: RetryCallKind): void {
    this.retryCalls.get([name, kind]).inc()
  }

  /** The content type of `metrics(openMetrics)`. */
  contentType (openMetrics: boolean): string {
    return openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE
  }

  /** Every metric in the Prometheus text format 0.0.4, or OpenMetrics 1.0.0. */
  async metrics (openMetrics = false): Promise<string> {
    // prom-client renders OpenMetrics by switching the registry's format and renaming its counters, so scrapes take turns.
    const run = this.scrapes.then(async () => await (openMetrics ? this.openMetrics() : this.registry.metrics()))
    this.scrapes = run.catch(() => {})
    return await run
  }

  private async openMetrics (): Promise<string> {
    this.registry.setContentType(openMetricsContentType)
    try {
      return await this.registry.metrics()
    } finally {
      this.registry.setContentType(prometheusContentType)
      for (const [metric, name] of this.counterNames) metric.name = name
    }
  }

  private counterCache (def: MetricDefinition): ChildCache<CounterChild> {
    const counter = this.counter(def)
    return new ChildCache((values) => counter.labels(...values))
  }

  private counter (def: MetricDefinition): Counter<string> {
    return new Counter({ name: def.name, help: def.help, labelNames: def.labelNames, registers: [this.registry] })
  }

  private histogram (def: MetricDefinition): Histogram<string> {
    return new Histogram({ name: def.name, help: def.help, labelNames: def.labelNames, buckets: [...def.buckets ?? []], registers: [this.registry] })
  }

  /** A gauge filled from the breakers' snapshots when scraped, and only then. */
  private breakerGauge (def: MetricDefinition, fill: (gauge: Gauge<string>, snapshot: BreakerSnapshot) => void): void {
    const gauge: Gauge<string> = new Gauge({
      name: def.name,
      help: def.help,
      labelNames: def.labelNames,
      registers: [this.registry],
      collect: () => {
        gauge.reset()
        for (const snapshot of this.breakers()) fill(gauge, snapshot)
      }
    })
  }
}
