// Each route's runtime, built from its config: its breaker, its upstream (pools, retries), its cache and bulk door.
import type { BulkRoute } from '../bulk/index.js'
import type { RouteCache } from '../cache/index.js'
import type { GatewayConfig, RetryConfig, RouteConfig } from '../config/index.js'
import type { GatewayMetrics } from '../metrics/index.js'
import type { RouteRuntime } from '../pipeline/index.js'
import { RouteForwarder, type RetryPolicy } from '../proxy/index.js'
import { backoffMs, isRetryableMethod, parseRetryAfterSeconds, shouldRetry, type BreakerRegistry, type CircuitBreaker } from '../resilience/index.js'

/** Each route's upstream: its pools behind its breaker, with its retry policy counted in resilience4j_retry_calls_total. */
export function buildUpstreams (config: GatewayConfig, breakers: BreakerRegistry, metrics: GatewayMetrics): ReadonlyMap<string, RouteForwarder> {
  return new Map(config.routes.map((route) => [route.id, new RouteForwarder(route, {
    trustProxy: config.server.trustProxy,
    sendTimeoutMs: config.server.sendTimeoutMs,
    guard: breakers.get(route.id),
    retry: route.retry.retries === 0 ? undefined : retryPolicy(route.id, route.retry, metrics)
  })]))
}

export interface RouteParts {
  readonly breakers: BreakerRegistry
  readonly upstreams: ReadonlyMap<string, RouteForwarder>
  readonly caches: ReadonlyMap<string, RouteCache>
  readonly bulk: ReadonlyMap<string, BulkRoute>
}

export function buildRouteRuntimes (routes: readonly RouteConfig[], parts: RouteParts): RouteRuntime[] {
  return routes.map((route) => ({
    route,
    breaker: parts.breakers.get(route.id) as CircuitBreaker,
    upstream: parts.upstreams.get(route.id) as RouteForwarder,
    cache: parts.caches.get(route.id) ?? null,
    bulk: parts.bulk.get(route.id) ?? null,
    fallbackBody: route.breaker.fallback === null ? null : Buffer.from(route.breaker.fallback.body)
  }))
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
