// What forwarding needs of resilience/: a breaker's admission and outcome accounting, and a retry policy.
import type { RouteConfig } from '../config/index.js'
import type { ExchangeResult } from './exchange.js'

export interface GuardPermit {
  readonly permitted: true
}

export interface GuardRefusal {
  readonly permitted: false
  /** Milliseconds until a call may go through again: the answer's Retry-After. */
  readonly retryAfterMs: number
}

export type GuardOutcome = 'success' | 'failure' | 'ignored'

/** Method syntax on purpose: a breaker whose permits carry more than `permitted` is still a guard. */
export interface CallGuard {
  tryAcquire (): GuardPermit | GuardRefusal
  /** Whether tryAcquire would refuse now, without taking a permit or counting anything. */
  refuses (): boolean
  /** Exactly once per permit. */
  onResult (permit: GuardPermit, outcome: GuardOutcome, durationMs: number, errorMessage?: string): void
}

/**
 * How the breaker counts an exchange: the route's `failureStatuses` and upstream errors are failures; a client that
 * left, or a body the client made too large, is the client's doing and ignored; any other answer (4xx included) is a success.
 */
export function outcomeOf (result: ExchangeResult, route: RouteConfig): { outcome: GuardOutcome, message?: string } {
  switch (result.kind) {
    case 'response':
    case 'held':
      return route.breaker.failureStatuses.includes(result.status)
        ? { outcome: 'failure', message: `upstream answered ${result.status}` }
        : { outcome: 'success' }
    case 'failed':
      return result.error.code === 'BW_ERR_REQUEST_BODY_TOO_LARGE'
        ? { outcome: 'ignored' }
        : { outcome: 'failure', message: result.error.message }
    case 'abandoned':
      return { outcome: 'ignored' }
  }
}

/** A failed attempt as the retry policy sees it: the upstream's status, or what went wrong without one. */
export interface AttemptFailure {
  readonly status?: number
  readonly kind?: 'connect' | 'timeout'
}

export interface RetryPolicy {
  /** Extra attempts after the first. */
  readonly retries: number
  /** Whether requests with this method may be retried at all. */
  readonly appliesTo: (method: string) => boolean
  /** Whether this failed attempt may be retried. */
  readonly retryable: (failure: AttemptFailure) => boolean
  /** Milliseconds before retry number `attempt` (0 for the first), given the held answer's Retry-After, if any. */
  readonly delayMs: (attempt: number, retryAfter: string | undefined) => number
  /** Hears each request's final outcome once (resilience4j_retry_calls_total). */
  readonly onOutcome?: (succeeded: boolean, retried: boolean) => void
}

/** The retry policy's view of a gateway error: only connect failures and timeouts are candidates. */
export function failureOf (code: string): AttemptFailure {
  if (code === 'BW_ERR_UPSTREAM_UNREACHABLE') return { kind: 'connect' }
  if (code === 'BW_ERR_UPSTREAM_TIMEOUT') return { kind: 'timeout' }
  return {}
}
