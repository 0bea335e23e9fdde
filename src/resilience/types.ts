// The breaker's public shapes: Resilience4j's states, per-call outcomes, and what the actuator shows of a breaker.

import type { BreakerStateName } from '../core/index.js'

// The states and the snapshot are core's: metrics and the actuator read them without importing this feature.
export { BREAKER_STATES, type BreakerSnapshot, type BreakerStateName } from '../core/index.js'

/** What one call through the breaker came to. `ignored`: neither (a 4xx, a client that left): it is not counted. */
export type CallOutcome = 'success' | 'failure' | 'ignored'

/** Operator commands, as Spring Boot Actuator's POST /actuator/circuitbreakers/{name} takes them in `updateState`. */
export const BREAKER_COMMANDS = ['CLOSE', 'FORCE_OPEN', 'DISABLE', 'METRICS_ONLY'] as const
export type BreakerCommand = typeof BREAKER_COMMANDS[number]

/** Resilience4j's event types (CircuitBreakerEvent.Type) that Breakwater emits. */
export type BreakerEventType = 'SUCCESS' | 'ERROR' | 'IGNORED_ERROR' | 'NOT_PERMITTED' | 'STATE_TRANSITION' | 'RESET' |
  'FAILURE_RATE_EXCEEDED' | 'SLOW_CALL_RATE_EXCEEDED'

/** One event, in the shape of GET /actuator/circuitbreakerevents. */
export interface BreakerEvent {
  readonly circuitBreakerName: string
  readonly type: BreakerEventType
  /** ISO 8601. */
  readonly creationTime: string
  readonly errorMessage?: string
  readonly durationInMs?: number
  /** Like `CLOSED_TO_OPEN`. */
  readonly stateTransition?: string
}

/** Why the breaker changed state; published on `breaker.transition` and logged with each transition. */
export type TransitionReason =
  | 'failureThreshold' // CLOSED -> OPEN: `failureThreshold` consecutive failures
  | 'failureRate' // CLOSED -> OPEN: failure rate over the window >= `failureRateThreshold`
  | 'slowCallRate' // CLOSED -> OPEN: slow-call rate over the window >= `slowCallRateThreshold`
  | 'recoveryTimeout' // OPEN -> HALF_OPEN: the first call at or after the open's retry time
  | 'halfOpenSuccess' // HALF_OPEN -> CLOSED: every trial call succeeded
  | 'halfOpenFailure' // HALF_OPEN -> OPEN: a trial call failed
  | 'command' // an operator's BreakerCommand

/** How a recorded call is labelled in `resilience4j_circuitbreaker_calls_seconds{kind}`. */
export type CallKind = 'successful' | 'failed' | 'ignored'

/** Leave to make one call; hand it back to `CircuitBreaker.onResult` exactly once. */
export interface Permit {
  readonly permitted: true
  /** A HALF_OPEN trial call: its outcome decides whether the breaker closes or reopens. */
  readonly trial: boolean
}

/** The breaker refused the call: answer without touching the upstream. */
export interface Refusal {
  readonly permitted: false
  /** The state that refused: OPEN, HALF_OPEN (all trial permits taken) or FORCED_OPEN. */
  readonly state: BreakerStateName
  /** Milliseconds until a call may be let through again (for `Retry-After`); an estimate in HALF_OPEN and FORCED_OPEN. */
  readonly retryAfterMs: number
}
