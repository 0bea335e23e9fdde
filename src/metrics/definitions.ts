// The one table of metric definitions: names, help, type, labels and buckets are a public contract (dashboards and alerts read them).
import { BREAKER_STATES } from '../core/index.js'

export type MetricType = 'counter' | 'gauge' | 'histogram'

export interface MetricDefinition {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  readonly labelNames: readonly string[]
  /** Histogram bucket upper bounds, in seconds (in items for bulk_batch_size). */
  readonly buckets?: readonly number[]
}

/**
 * Request latency buckets in seconds: Micrometer's percentile histogram for a timer spans 1 ms to 30 s; this is a
 * coarser ladder over the same span, enough for histogram_quantile() at p50/p90/p99.
 */
export const LATENCY_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const

/** Cache store operation buckets in seconds: a memory lookup is microseconds, a Redis round trip about a millisecond, and past the command timeout (100 ms by default) the cache is bypassed. */
export const CACHE_OPERATION_BUCKETS_SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] as const

/** `operation` of cache_operation_latency_seconds and cache_errors_total. */
export const CACHE_OPERATIONS = ['get', 'set', 'delete'] as const
export type CacheOperation = typeof CACHE_OPERATIONS[number]
/** `store` of cache_operation_latency_seconds. */
export const CACHE_STORES = ['memory', 'redis'] as const
export type CacheStoreKind = typeof CACHE_STORES[number]
/** `reason` of cache_stale_served_total: stale-while-revalidate, the upstream failed, the breaker is open. */
export const STALE_REASONS = ['swr', 'error', 'breaker'] as const
export type StaleReason = typeof STALE_REASONS[number]

/** `outcome` of bulk_items_total: taken in, delivered to the upstream, failed for good, refused at the door. */
export const BULK_ITEM_OUTCOMES = ['accepted', 'delivered', 'failed', 'rejected'] as const
export type BulkItemOutcome = typeof BULK_ITEM_OUTCOMES[number]
/** `outcome` of bulk_batches_total, one per attempt: the upstream took it, another attempt follows, it failed for good. */
export const BULK_BATCH_OUTCOMES = ['success', 'retry', 'failed'] as const
export type BulkBatchOutcome = typeof BULK_BATCH_OUTCOMES[number]
/** Items per batch: from a lone item after maxWait up to the largest batchSize (100000). */
export const BULK_BATCH_SIZE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 100000] as const

/** Spring's `outcome` tag (org.springframework.boot.actuate.metrics.http.Outcome). */
export const OUTCOMES = ['INFORMATIONAL', 'SUCCESS', 'REDIRECTION', 'CLIENT_ERROR', 'SERVER_ERROR', 'UNKNOWN'] as const
export type Outcome = typeof OUTCOMES[number]

/** Resilience4j's `state` label values: its State enum, lower-cased. */
export const BREAKER_STATE_LABELS = BREAKER_STATES.map((state) => state.toLowerCase())
/** `kind` of resilience4j_circuitbreaker_calls_seconds. */
/** How a config reload ended. */
export const RELOAD_RESULTS = ['success', 'failure'] as const
export type ReloadResult = typeof RELOAD_RESULTS[number]

export const BREAKER_CALL_KINDS = ['successful', 'failed', 'ignored'] as const
export type BreakerCallKind = typeof BREAKER_CALL_KINDS[number]
/** `kind` of resilience4j_retry_calls_total. */
export const RETRY_CALL_KINDS = ['successful_without_retry', 'successful_with_retry', 'failed_without_retry', 'failed_with_retry'] as const
export type RetryCallKind = typeof RETRY_CALL_KINDS[number]

/** Every metric Breakwater exports besides prom-client's default process and Node.js metrics. */
export const METRICS = {
  transactions: {
    name: 'transactions_total',
    help: 'Requests that matched a route, by route, method and status',
    type: 'counter',
    labelNames: ['route', 'method', 'status']
  },
  httpServerRequests: {
    // Spring Boot's http.server.requests timer; `uri` is the route's prefix, or NOT_FOUND. `route`, the route id (empty
    // for the gateway's own endpoints and unmatched requests), lets latency be read per route as transactions_total is.
    name: 'http_server_requests_seconds',
    help: 'Duration of HTTP server request handling',
    type: 'histogram',
    labelNames: ['method', 'uri', 'status', 'outcome', 'exception', 'route'],
    buckets: LATENCY_BUCKETS_SECONDS
  },
  // Resilience4j's Micrometer binder (resilience4j-micrometer TaggedCircuitBreakerMetrics), `name` is the route id.
  breakerState: {
    name: 'resilience4j_circuitbreaker_state',
    help: 'The states of the circuit breaker',
    type: 'gauge',
    labelNames: ['name', 'state']
  },
  breakerCalls: {
    name: 'resilience4j_circuitbreaker_calls_seconds',
    help: 'Calls through the circuit breaker: successful, failed, or ignored (neither)',
    type: 'histogram',
    labelNames: ['name', 'kind'],
    buckets: LATENCY_BUCKETS_SECONDS
  },
  breakerNotPermitted: {
    name: 'resilience4j_circuitbreaker_not_permitted_calls_total',
    help: 'Total number of not permitted calls',
    type: 'counter',
    labelNames: ['name', 'kind']
  },
  breakerBufferedCalls: {
    name: 'resilience4j_circuitbreaker_buffered_calls',
    help: 'The number of buffered calls in the sliding window, successful or failed',
    type: 'gauge',
    labelNames: ['name', 'kind']
  },
  breakerSlowCalls: {
    name: 'resilience4j_circuitbreaker_slow_calls',
    help: 'The number of calls in the sliding window slower than the slow-call threshold, successful or failed',
    type: 'gauge',
    labelNames: ['name', 'kind']
  },
  breakerFailureRate: {
    name: 'resilience4j_circuitbreaker_failure_rate',
    help: 'The failure rate of the circuit breaker in percent; -1 until minimumCalls were seen',
    type: 'gauge',
    labelNames: ['name']
  },
  breakerSlowCallRate: {
    name: 'resilience4j_circuitbreaker_slow_call_rate',
    help: 'The slow call rate of the circuit breaker in percent; -1 until minimumCalls were seen',
    type: 'gauge',
    labelNames: ['name']
  },
  retryCalls: {
    name: 'resilience4j_retry_calls_total',
    help: 'The number of calls, by whether they succeeded and whether they were retried',
    type: 'counter',
    labelNames: ['name', 'kind']
  },
  // The original sprint plan's cache metrics, and the ones the cache issue adds.
  cacheHits: {
    name: 'cache_hits_total',
    help: 'Requests answered from the cache (X-Cache HIT or REVALIDATED), by route',
    type: 'counter',
    labelNames: ['route']
  },
  cacheMisses: {
    name: 'cache_misses_total',
    help: 'Cacheable requests the cache could not answer, sent upstream (X-Cache MISS), by route',
    type: 'counter',
    labelNames: ['route']
  },
  cacheOperationLatency: {
    name: 'cache_operation_latency_seconds',
    help: 'Duration of cache store operations, by operation and store',
    type: 'histogram',
    labelNames: ['operation', 'store'],
    buckets: CACHE_OPERATION_BUCKETS_SECONDS
  },
  cacheStaleServed: {
    name: 'cache_stale_served_total',
    help: 'Stale entries served (X-Cache STALE), by route and reason: swr, error, breaker',
    type: 'counter',
    labelNames: ['route', 'reason']
  },
  cacheBypass: {
    name: 'cache_bypass_total',
    help: 'Requests on a caching route that bypassed the cache (X-Cache BYPASS), by route and reason',
    type: 'counter',
    labelNames: ['route', 'reason']
  },
  cacheErrors: {
    name: 'cache_errors_total',
    help: 'Cache store operations that failed or timed out, by operation',
    type: 'counter',
    labelNames: ['operation']
  },
  // The write coalescing issue's metrics.
  bulkItems: {
    name: 'bulk_items_total',
    help: 'Single writes on a bulk route, by route and outcome: accepted, delivered, failed, rejected',
    type: 'counter',
    labelNames: ['route', 'outcome']
  },
  bulkBatches: {
    name: 'bulk_batches_total',
    help: 'Attempts at sending a batch upstream, by route and outcome: success, retry (another attempt follows), failed',
    type: 'counter',
    labelNames: ['route', 'outcome']
  },
  bulkBatchSize: {
    name: 'bulk_batch_size',
    help: 'Items per batch sent upstream, by route',
    type: 'histogram',
    labelNames: ['route'],
    buckets: BULK_BATCH_SIZE_BUCKETS
  },
  bulkFlushDuration: {
    name: 'bulk_flush_duration_seconds',
    help: 'Time from sending a batch to its last result, retries included, by route',
    type: 'histogram',
    labelNames: ['route'],
    buckets: LATENCY_BUCKETS_SECONDS
  },
  bulkPending: {
    name: 'bulk_pending_items',
    help: 'Items accepted and not yet delivered or failed (waiting or in a batch in flight), by route',
    type: 'gauge',
    labelNames: ['route']
  },
  bulkDeadLetters: {
    name: 'bulk_dead_letter_items',
    help: 'Items in the route\'s dead-letter store, by route',
    type: 'gauge',
    labelNames: ['route']
  },
  // The hot reload issue's metrics, named as Prometheus names its own (prometheus_config_last_reload_*).
  configReloads: {
    name: 'config_reloads_total',
    help: 'Config reloads attempted (SIGHUP, POST /actuator/refresh, a watched file change), by result: success, failure',
    type: 'counter',
    labelNames: ['result']
  },
  configLastReloadSuccess: {
    name: 'config_last_reload_success_timestamp_seconds',
    help: 'When the config now serving was loaded (the start, or the last successful reload), in Unix seconds',
    type: 'gauge',
    labelNames: []
  },
  configGeneration: {
    name: 'config_generation',
    help: 'The generation of the config now serving: 1 at the start, one more at each successful reload',
    type: 'gauge',
    labelNames: []
  }
} as const satisfies Record<string, MetricDefinition>

export type MetricKey = keyof typeof METRICS

/** The definitions as a list, in table order: what dashboards and drift tests iterate. */
export const METRIC_DEFINITIONS: readonly MetricDefinition[] = Object.values(METRICS)
