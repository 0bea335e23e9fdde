// GatewayMetrics: the prom-client registry with the definitions, cheap per-request recording, and breaker gauges read at scrape time.
import {
  collectDefaultMetrics, Gauge, Registry, type Metric, type RegistryContentType
} from 'prom-client'
import { BREAKER_STATES, type BreakerSnapshot } from '../core/index.js'
import {
  BREAKER_CALL_KINDS, BULK_BATCH_OUTCOMES, BULK_ITEM_OUTCOMES, CACHE_OPERATIONS, METRICS, RELOAD_RESULTS, RETRY_CALL_KINDS,
  type BreakerCallKind, type BulkBatchOutcome, type BulkItemOutcome, type CacheOperation, type CacheStoreKind, type MetricDefinition,
  type Outcome, type ReloadResult, type RetryCallKind, type StaleReason
} from './definitions.js'
import { Exposition } from './exposition.js'

/** The `uri` of a request that matched no route, as Spring tags an unmapped 404. */
export const NOT_FOUND_URI = 'NOT_FOUND'
/** The `exception` of a request that ended without one, as Spring tags it. */
export const NO_EXCEPTION = 'None'

/** The breakers to report, read at every scrape (so their gauges cost nothing per request). */
export type BreakerSnapshotSource = () => Iterable<BreakerSnapshot>

/** A bulk route's gauges, read at every scrape. */
export interface BulkGauges {
  readonly route: string
  /** Items accepted and not yet delivered or failed. */
  readonly pending: number
  readonly deadLetters: number
}

/** The bulk routes to report; a durable queue's counts live in Redis, hence the promise. It must not reject: a failed read reports the last figures. */
export type BulkGaugeSource = () => Promise<readonly BulkGauges[]>

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

type Labels = Readonly<Record<string, string>>

/** One counter series: a number bumped per request, handed to the registry at scrape time. */
class CounterSeries {
  value = 0
  constructor (readonly labels: Labels) {}

  inc (by = 1): void {
    this.value += by
  }
}

/** One histogram series: count, sum, and a count per bucket (not cumulative: the scrape adds them up, as prom-client does). */
class HistogramSeries {
  count = 0
  sum = 0
  readonly buckets: ReadonlyArray<{ readonly bound: number, count: number }>
  constructor (readonly labels: Labels, bounds: readonly number[]) {
    this.buckets = bounds.map((bound) => ({ bound, count: 0 }))
  }

  observe (value: number): void {
    // prom-client refused these too: one NaN would make the sum NaN for good.
    if (!Number.isFinite(value)) throw new TypeError(`expected a finite number of seconds, got ${value}`)
    this.count++
    this.sum += value
    // Prometheus' `le`: the first bound the value does not exceed; past the last one it counts in +Inf only.
    for (const bucket of this.buckets) {
      if (value <= bucket.bound) {
        bucket.count++
        return
      }
    }
  }
}

/**
 * A tree of maps, one level per label, ending in a series: label lookups without building strings. A series is
 * exported from its first lookup on, and in the order of first lookups, as prom-client's children were.
 */
class ChildCache<T> {
  private root = new Map<unknown, unknown>()
  private series: T[] = []
  constructor (private readonly labelNames: readonly string[], private readonly create: (labels: Labels) => T) {}

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
      child = this.create(Object.fromEntries(this.labelNames.map((name, i) => [name, String(values[i])] as const)))
      level.set(values[last], child)
      this.series.push(child)
    }
    return child
  }

  get all (): readonly T[] {
    return this.series
  }

  clear (): void {
    this.root = new Map()
    this.series = []
  }
}

/** A sample as prom-client's registry reads it from `get()`: a histogram's bucket carries `le` first, then the series' labels. */
interface Sample {
  readonly labels: Readonly<Record<string, string | number>>
  readonly value: number
  readonly metricName?: string
}

function histogramSamples (name: string, series: HistogramSeries): Sample[] {
  const samples: Sample[] = []
  let cumulative = 0
  for (const { bound, count } of series.buckets) {
    cumulative += count
    samples.push({ labels: { le: bound, ...series.labels }, value: cumulative, metricName: `${name}_bucket` })
  }
  samples.push(
    { labels: { le: '+Inf', ...series.labels }, value: series.count, metricName: `${name}_bucket` },
    { labels: series.labels, value: series.sum, metricName: `${name}_sum` },
    { labels: series.labels, value: series.count, metricName: `${name}_count` }
  )
  return samples
}

export class GatewayMetrics {
  readonly registry = new Registry<RegistryContentType>()
  private readonly exposition = new Exposition(this.registry)
  private breakers: BreakerSnapshotSource
  private readonly transactions: ChildCache<CounterSeries>
  private readonly requests: ChildCache<HistogramSeries>
  private readonly breakerCalls: ChildCache<HistogramSeries>
  private readonly notPermitted: ChildCache<CounterSeries>
  private readonly retryCalls: ChildCache<CounterSeries>
  private readonly cacheHits: ChildCache<CounterSeries>
  private readonly cacheMisses: ChildCache<CounterSeries>
  private readonly cacheOperations: ChildCache<HistogramSeries>
  private readonly cacheStale: ChildCache<CounterSeries>
  private readonly cacheBypass: ChildCache<CounterSeries>
  private readonly cacheErrors: ChildCache<CounterSeries>
  private readonly bulkItems: ChildCache<CounterSeries>
  private readonly bulkBatches: ChildCache<CounterSeries>
  private readonly bulkBatchSizes: ChildCache<HistogramSeries>
  private readonly bulkFlushes: ChildCache<HistogramSeries>
  private readonly configReloads: ChildCache<CounterSeries>
  private readonly configLoadedAt: Gauge
  private readonly configGeneration: Gauge
  private bulkGauges: BulkGaugeSource = async () => []
  /** The bulk source's answer for the scrape under way: the registry collects every metric in one turn, so both gauges share one read. */
  private bulkRead: Promise<readonly BulkGauges[]> | null = null

  constructor (options: GatewayMetricsOptions = {}) {
    this.breakers = options.breakers ?? (() => [])
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry })

    // Registration order is exposition order.
    this.transactions = this.counter(METRICS.transactions)
    this.requests = this.histogram(METRICS.httpServerRequests)
    this.breakerCalls = this.histogram(METRICS.breakerCalls)
    this.notPermitted = this.counter(METRICS.breakerNotPermitted)
    this.retryCalls = this.counter(METRICS.retryCalls)
    this.cacheHits = this.counter(METRICS.cacheHits)
    this.cacheMisses = this.counter(METRICS.cacheMisses)
    this.cacheOperations = this.histogram(METRICS.cacheOperationLatency)
    this.cacheStale = this.counter(METRICS.cacheStaleServed)
    this.cacheBypass = this.counter(METRICS.cacheBypass)
    this.cacheErrors = this.counter(METRICS.cacheErrors)
    this.bulkItems = this.counter(METRICS.bulkItems)
    this.bulkBatches = this.counter(METRICS.bulkBatches)
    this.bulkBatchSizes = this.histogram(METRICS.bulkBatchSize)
    this.bulkFlushes = this.histogram(METRICS.bulkFlushDuration)
    this.configReloads = this.counter(METRICS.configReloads)
    for (const result of RELOAD_RESULTS) this.configReloads.get([result])
    this.configLoadedAt = this.gauge(METRICS.configLastReloadSuccess)
    this.configGeneration = this.gauge(METRICS.configGeneration)

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
    this.bulkGauge(METRICS.bulkPending, (gauge, b) => { gauge.set({ route: b.route }, b.pending) })
    this.bulkGauge(METRICS.bulkDeadLetters, (gauge, b) => { gauge.set({ route: b.route }, b.deadLetters) })
  }

  /**
   * Exports breaker `name`'s call series at zero before its first call, as Resilience4j registers its meters, so
   * rate() and absent() see the series from the first scrape. With `retries`, its retry series too.
   */
  declareBreaker (name: string, retries: boolean): void {
    // A series is exported from its first lookup.
    for (const kind of BREAKER_CALL_KINDS) this.breakerCalls.get([name, kind])
    this.notPermitted.get([name, 'not_permitted'])
    if (retries) for (const kind of RETRY_CALL_KINDS) this.retryCalls.get([name, kind])
  }

  /** Exports route `name`'s hit and miss series at zero before its first request, and the error series once. */
  declareCache (route: string): void {
    this.cacheHits.get([route])
    this.cacheMisses.get([route])
    for (const operation of CACHE_OPERATIONS) this.cacheErrors.get([operation])
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

  /** Exports bulk route `route`'s item and batch series at zero before its first write, as Resilience4j registers its meters. */
  declareBulk (route: string): void {
    for (const outcome of BULK_ITEM_OUTCOMES) this.bulkItems.get([route, outcome])
    for (const outcome of BULK_BATCH_OUTCOMES) this.bulkBatches.get([route, outcome])
  }

  /** `count` single writes on bulk route `route` reached `outcome`. */
  countBulkItems (route: string, outcome: BulkItemOutcome, count: number): void {
    this.bulkItems.get([route, outcome]).inc(count)
  }

  /** One attempt at a batch, and how it ended. */
  countBulkBatch (route: string, outcome: BulkBatchOutcome): void {
    this.bulkBatches.get([route, outcome]).inc()
  }

  /** A batch of `size` items was sent. */
  observeBulkBatchSize (route: string, size: number): void {
    this.bulkBatchSizes.get([route]).observe(size)
  }

  /** A batch settled, `seconds` after it was sent (retries included). */
  observeBulkFlush (route: string, seconds: number): void {
    this.bulkFlushes.get([route]).observe(seconds)
  }

  /** Where the bulk gauges are read from at each scrape. */
  setBulkGaugeSource (source: BulkGaugeSource): void {
    this.bulkGauges = source
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
    this.requests.get([method, uri, status, outcomeOf(status), exception, route ?? '']).observe(seconds)
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

  /** A config reload ended with `result`. */
  countReload (result: ReloadResult): void {
    this.configReloads.get([result]).inc()
  }

  /** The config now serving: its generation and when it was loaded (Unix ms). */
  setConfig (generation: number, loadedAtMs: number): void {
    this.configGeneration.set(generation)
    this.configLoadedAt.set(loadedAtMs / 1000)
  }

  /** The content type of `metrics(openMetrics)`. */
  contentType (openMetrics: boolean): string {
    return this.exposition.contentType(openMetrics)
  }

  /** Every metric in the Prometheus text format 0.0.4, or OpenMetrics 1.0.0. */
  async metrics (openMetrics = false): Promise<string> {
    return await this.exposition.render(openMetrics)
  }

  private counter (def: MetricDefinition): ChildCache<CounterSeries> {
    const series = new ChildCache(def.labelNames, (labels) => new CounterSeries(labels))
    this.export(def, series, () => series.all.map(({ labels, value }) => ({ labels, value })))
    return series
  }

  private histogram (def: MetricDefinition): ChildCache<HistogramSeries> {
    const series = new ChildCache(def.labelNames, (labels) => new HistogramSeries(labels, def.buckets ?? []))
    this.export(def, series, () => series.all.flatMap((one) => histogramSamples(def.name, one)))
    return series
  }

  /**
   * Registers a metric whose series we keep, so requests pay a few number writes instead of prom-client's label
   * validation and hashing. The registry reads only name, help, type, aggregator, get() and reset() (prom-client's
   * cluster aggregation registers such plain objects too); `name` stays writable for the OpenMetrics renaming.
   */
  private export (def: MetricDefinition, series: ChildCache<unknown>, samples: () => Sample[]): void {
    const metric = {
      name: def.name,
      help: def.help,
      type: def.type,
      aggregator: 'sum',
      get: async () => ({ name: metric.name, help: metric.help, type: metric.type, aggregator: metric.aggregator, values: samples() }),
      reset: () => { series.clear() }
    }
    this.registry.registerMetric(metric as unknown as Metric)
  }

  /** A gauge without labels, set when its value changes. */
  private gauge (def: MetricDefinition): Gauge {
    return new Gauge({ name: def.name, help: def.help, registers: [this.registry] })
  }

  /** A gauge filled from the bulk routes' figures when scraped. */
  private bulkGauge (def: MetricDefinition, fill: (gauge: Gauge<string>, figures: BulkGauges) => void): void {
    const gauge: Gauge<string> = new Gauge({
      name: def.name,
      help: def.help,
      labelNames: def.labelNames,
      registers: [this.registry],
      collect: async () => {
        if (this.bulkRead === null) {
          this.bulkRead = this.bulkGauges()
          setImmediate(() => { this.bulkRead = null })
        }
        const all = await this.bulkRead
        gauge.reset()
        for (const figures of all) fill(gauge, figures)
      }
    })
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
