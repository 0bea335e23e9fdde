// What listens to the gateway's events: metrics, the access log and the warning lines. Features publish; this is the
// only place that turns their events into metrics and log lines.
import type { FastifyBaseLogger } from 'fastify'
import type { BulkEvents } from '../bulk/index.js'
import type { CacheEvents, StaleReason } from '../cache/index.js'
import type { RouteConfig } from '../config/index.js'
import type { Topic } from '../core/index.js'
import { NO_EXCEPTION, type BulkGaugeSource, type GatewayMetrics } from '../metrics/index.js'
import type { RequestRecord } from '../pipeline/index.js'
import type { BreakerRegistry } from '../resilience/index.js'
import { accessLine, type AccessLineWriter } from './access-log.js'
import { isUpstreamNetworkFailure, type UpstreamFailureLog } from './upstream-failure-log.js'

/** How often at most a failing store is logged: an outage must not flood the log with one line per request. */
export const STORE_WARNING_INTERVAL_MS = 30_000

export interface RequestListeners {
  readonly metrics: GatewayMetrics
  readonly log: FastifyBaseLogger
  /** Writes each request's access line, while `logSettings.accessLog` is on. */
  readonly accessLine: AccessLineWriter
  /** `server.accessLog` of the config serving. */
  readonly logSettings: { readonly accessLog: boolean }
  readonly upstreamFailures: UpstreamFailureLog
}

/** Every request's record: its failure (before its access line), its access line, its metrics. */
export function observeRequests (requestEnd: Topic<RequestRecord>, listeners: RequestListeners): void {
  const { metrics, log, accessLine: writeLine, logSettings, upstreamFailures } = listeners
  requestEnd.subscribe((record) => {
    const err = record.error
    if (err === null) return
    // The upstream's address is in the log only: the client's problem names the route.
    if (isUpstreamNetworkFailure(err)) upstreamFailures.failed(err, record.routeId ?? '-', record.requestId)
    else log.warn({ requestId: record.requestId, err: err.cause ?? err, route: record.routeId, upstream: err.upstream }, err.message)
  })
  requestEnd.subscribe((record) => {
    if (logSettings.accessLog) writeLine(record.requestId, accessLine(record.routeId, record.method, record.url, record.status, record.durationMs, record.code))
  })
  requestEnd.subscribe((record) => {
    metrics.observeRequest(record.routeId, record.method, record.uri, record.status, record.durationMs / 1000, record.code ?? NO_EXCEPTION)
  })
}

/**
 * Exports the series of each route's breaker, retries, cache and bulk coalescing at zero before their first event, as
 * Resilience4j registers its meters: at the start, and for the routes a reload adds or changes.
 */
export function declareRouteMetrics (routes: readonly RouteConfig[], metrics: GatewayMetrics): void {
  for (const route of routes) {
    metrics.declareBreaker(route.id, route.retry.retries > 0)
    if (route.cache !== null) metrics.declareCache(route.id)
    if (route.bulk !== null) metrics.declareBulk(route.id)
  }
}

/** Each breaker's calls and refusals as Resilience4j's metrics, its transitions as warnings. */
export function observeBreakers (breakers: BreakerRegistry, metrics: GatewayMetrics, log: FastifyBaseLogger): void {
  breakers.events.transition.subscribe(({ name, from, to, reason }) => {
    log.warn({ route: name, from, to, reason }, `circuit breaker ${name}: ${from} -> ${to} (${reason})`)
  })
  breakers.events.call.subscribe(({ name, kind, durationMs }) => { metrics.observeBreakerCall(name, kind, durationMs / 1000) })
  breakers.events.notPermitted.subscribe(({ name }) => { metrics.countNotPermitted(name) })
}

/** The caches' outcomes as counters; a failing store as a warning at most every STORE_WARNING_INTERVAL_MS. */
export function observeCaches (events: CacheEvents, metrics: GatewayMetrics, log: FastifyBaseLogger, now: () => number): void {
  events.outcome.subscribe(({ route, status, reason }) => {
    if (status === 'HIT' || status === 'REVALIDATED') metrics.countCacheHit(route)
    else if (status === 'MISS') metrics.countCacheMiss(route)
    else if (status === 'STALE') metrics.countStaleServed(route, reason as StaleReason)
    else metrics.countCacheBypass(route, reason as string)
  })
  let lastWarning = -Infinity
  events.failure.subscribe(({ route, err }) => {
    if (now() - lastWarning < STORE_WARNING_INTERVAL_MS) return
    lastWarning = now()
    log.warn({ route, err }, `cache bypassed: ${(err as Error).message} (logged at most every ${STORE_WARNING_INTERVAL_MS / 1000} s)`)
  })
}

/** The bulk routes' items and batches as metrics; their queues' figures as the bulk gauges. */
export function observeBulk (events: BulkEvents, gauges: BulkGaugeSource, metrics: GatewayMetrics): void {
  events.items.subscribe(({ route, outcome, count }) => { metrics.countBulkItems(route, outcome, count) })
  events.batch.subscribe(({ route, size, durationMs }) => {
    metrics.observeBulkBatchSize(route, size)
    metrics.observeBulkFlush(route, durationMs / 1000)
  })
  events.attempt.subscribe(({ route, outcome }) => { metrics.countBulkBatch(route, outcome) })
  metrics.setBulkGaugeSource(gauges)
}
