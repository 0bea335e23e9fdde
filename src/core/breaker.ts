// A circuit breaker as the rest of the gateway reads it (metrics, the actuator): Resilience4j's states and figures.

/** Resilience4j's circuit breaker states, with its meanings (see README "Circuit breakers"). */
export const BREAKER_STATES = ['CLOSED', 'OPEN', 'HALF_OPEN', 'FORCED_OPEN', 'DISABLED', 'METRICS_ONLY'] as const
export type BreakerStateName = typeof BREAKER_STATES[number]

/** Resilience4j's per-breaker figures, as its actuator and health indicator show them. Rates are -1 until `minimumCalls`. */
export interface BreakerSnapshot {
  readonly name: string
  readonly state: BreakerStateName
  readonly failureRate: number
  readonly failureRateThreshold: number
  readonly slowCallRate: number
  readonly slowCallRateThreshold: number
  readonly bufferedCalls: number
  readonly failedCalls: number
  readonly slowCalls: number
  readonly slowFailedCalls: number
  readonly notPermittedCalls: number
}
