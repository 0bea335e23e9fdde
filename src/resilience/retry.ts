// The retry policy, pure: which methods may be retried, which failures are, and how long to wait before each retry.
import type { RetryConfig } from '../config/index.js'

/** Idempotent methods (RFC 9110 section 9.2.2) without side effects beyond the first: the only ones retried. */
export const RETRYABLE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

/** A failed attempt: the upstream's status, or a failure without one (connect: refused or reset; timeout: the route's timeout passed). */
export interface AttemptFailure {
  readonly status?: number
  readonly kind?: 'connect' | 'timeout'
}

/** Whether a request with this method may be retried at all (methods are case-sensitive, RFC 9110 section 9.1). */
export function isRetryableMethod (method: string): boolean {
  return RETRYABLE_METHODS.has(method)
}

/**
 * Whether the route's `retry.on` covers this failure. It does not check the method, the attempts left, the breaker
 * or whether the body was already streamed: the caller does.
 */
export function shouldRetry (config: RetryConfig, failure: AttemptFailure): boolean {
  if (config.retries === 0) return false
  if (failure.kind === 'connect') return config.onConnect
  if (failure.kind === 'timeout') return config.onTimeout
  return failure.status !== undefined && config.statuses.includes(failure.status)
}

/**
 * Milliseconds to wait before a retry. `attempt` counts the retries already made: 0 before the first retry,
 * 1 before the second, up to `retries - 1`.
 *
 * Exponential backoff with full jitter: uniform in [0, min(maxBackoffMs, backoffMs * 2^attempt)).
 * A `Retry-After` (in seconds, from a 503) replaces it, capped at `maxBackoffMs`.
 * @param random a uniform number in [0, 1); tests pass a fixed one
 */
export function backoffMs (config: Pick<RetryConfig, 'backoffMs' | 'maxBackoffMs'>, attempt: number, random: () => number = Math.random, retryAfterSeconds?: number): number {
  if (retryAfterSeconds !== undefined && Number.isFinite(retryAfterSeconds) && retryAfterSeconds >= 0) {
    return Math.min(config.maxBackoffMs, retryAfterSeconds * 1000)
  }
  const ceiling = Math.min(config.maxBackoffMs, config.backoffMs * 2 ** attempt)
  return random() * ceiling
}

/**
 * Reads a `Retry-After` header as seconds from now: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).
 * Anything else is undefined; a date in the past is 0.
 */
export function parseRetryAfterSeconds (value: string | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed)
  // Every HTTP-date form (IMF-fixdate, RFC 850, asctime) starts with a day name; Date.parse alone takes '-5' as a year.
  const dateMs = /^[A-Za-z]{3}/.test(trimmed) ? Date.parse(trimmed) : Number.NaN
  if (Number.isNaN(dateMs)) return undefined
  return Math.max(0, Math.ceil((dateMs - nowMs) / 1000))
}
