// Spring Boot's health document (/actuator/health) with Resilience4j's circuitBreakers component.
import type { BreakerSnapshot, BreakerStateName } from '../resilience/types.js'

export type HealthStatus = 'UP' | 'DOWN'
/** Resilience4j's per-breaker health statuses (allowHealthIndicatorToFail: false, so never DOWN). */
export type BreakerHealthStatus = 'UP' | 'CIRCUIT_OPEN' | 'CIRCUIT_HALF_OPEN' | 'UNKNOWN'

/** A float as Java's Float.toString prints it, for Resilience4j's "50.0%" strings: integers keep one decimal. */
export function javaFloat (value: number): string {
  return Number.isInteger(value) ? value.toFixed(1) : String(Math.round(value * 1e6) / 1e6)
}

export function percent (value: number): string {
  return `${javaFloat(value)}%`
}

/** The ten figures Resilience4j's health indicator and CircuitBreakerEndpoint show of a breaker. */
export function breakerDetails (s: BreakerSnapshot): Record<string, string | number> {
  return {
    state: s.state,
    failureRate: percent(s.failureRate),
    failureRateThreshold: percent(s.failureRateThreshold),
    slowCallRate: percent(s.slowCallRate),
    slowCallRateThreshold: percent(s.slowCallRateThreshold),
    bufferedCalls: s.bufferedCalls,
    failedCalls: s.failedCalls,
    slowCalls: s.slowCalls,
    slowFailedCalls: s.slowFailedCalls,
    notPermittedCalls: s.notPermittedCalls
  }
}

export function breakerHealthStatus (state: BreakerStateName): BreakerHealthStatus {
  switch (state) {
    case 'CLOSED': return 'UP'
    case 'OPEN': return 'CIRCUIT_OPEN'
    case 'HALF_OPEN': return 'CIRCUIT_HALF_OPEN'
    default: return 'UNKNOWN'
  }
}

const BREAKER_STATUS_ORDER: readonly BreakerHealthStatus[] = ['CIRCUIT_OPEN', 'CIRCUIT_HALF_OPEN', 'UP', 'UNKNOWN']

export interface HealthComponent {
  readonly status: string
  readonly details?: Record<string, unknown>
}

/** The circuitBreakers component: the worst breaker's status (UP with no breakers), each breaker in its details. */
export function circuitBreakersHealth (snapshots: readonly BreakerSnapshot[]): HealthComponent {
  const details: Record<string, unknown> = {}
  let worst = BREAKER_STATUS_ORDER.length - 1
  for (const s of [...snapshots].sort((a, b) => compareNames(a.name, b.name))) {
    const status = breakerHealthStatus(s.state)
    worst = Math.min(worst, BREAKER_STATUS_ORDER.indexOf(status))
    details[s.name] = { status, details: breakerDetails(s) }
  }
  return { status: snapshots.length === 0 ? 'UP' : BREAKER_STATUS_ORDER[worst] as string, details }
}

export interface HealthDocument {
  readonly status: HealthStatus
  readonly components: Record<string, HealthComponent>
  readonly groups: readonly string[]
}

/**
 * The whole document. Only liveness and readiness decide the gateway's status: an open breaker cuts off one
 * upstream, and taking the gateway out of rotation for it would cut off every other route as well.
 */
export function healthDocument (ready: boolean, snapshots: readonly BreakerSnapshot[], extra: Readonly<Record<string, HealthComponent>> = {}): HealthDocument {
  const readiness = overallStatus(ready)
  return {
    status: readiness,
    // Spring sorts components by name; a Redis that is DOWN is shown but, like an open breaker, takes nothing DOWN:
    // without it the gateway still proxies, only uncached.
    components: Object.fromEntries(Object.entries({
      circuitBreakers: circuitBreakersHealth(snapshots),
      livenessState: { status: 'UP' },
      ping: { status: 'UP' },
      readinessState: { status: readiness },
      ...extra
    }).sort(([a], [b]) => compareNames(a, b))),
    groups: ['liveness', 'readiness']
  }
}

/** The gateway's status: its readiness alone (see healthDocument). */
export function overallStatus (ready: boolean): HealthStatus {
  return ready ? 'UP' : 'DOWN'
}

export function compareNames (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
