// One circuit breaker per route, by route id, with the listeners (logging, metrics) wired into each.
import type { RouteConfig } from '../config/index.js'
import { CircuitBreaker } from './circuit-breaker.js'
import type { BreakerStateName, CallKind, TransitionReason } from './types.js'

export interface BreakerRegistryOptions {
  /**
   * The clock shared by every breaker, in milliseconds.
   * @default Date.now
   */
  readonly now?: () => number
  /** Called once per state change of any breaker, with its name (the route id). */
  readonly onTransition?: (name: string, from: BreakerStateName, to: BreakerStateName, reason: TransitionReason) => void
  /** Called for each call a breaker records. */
  readonly onCall?: (name: string, kind: CallKind, durationMs: number) => void
  /** Called for each call a breaker refuses. */
  readonly onNotPermitted?: (name: string) => void
  /**
   * Events kept per breaker.
   * @default 100
   */
  readonly eventCapacity?: number
}

export class BreakerRegistry {
  readonly #breakers: ReadonlyMap<string, CircuitBreaker>
  readonly #sorted: readonly CircuitBreaker[]

  constructor (routes: readonly Pick<RouteConfig, 'id' | 'breaker'>[], options: BreakerRegistryOptions = {}) {
    const { now, onTransition, onCall, onNotPermitted, eventCapacity } = options
    const breakers = new Map<string, CircuitBreaker>()
    for (const route of routes) {
      const name = route.id
      if (breakers.has(name)) throw new Error(`expected route ids to be unique, got ${name} twice`)
      breakers.set(name, new CircuitBreaker(name, route.breaker, {
        now,
        eventCapacity,
        onTransition: onTransition && ((from, to, reason) => onTransition(name, from, to, reason)),
        onCall: onCall && ((kind, durationMs) => onCall(name, kind, durationMs)),
        onNotPermitted: onNotPermitted && (() => onNotPermitted(name))
      }))
    }
    this.#breakers = breakers
    this.#sorted = [...breakers.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  }

  get (name: string): CircuitBreaker | undefined {
    return this.#breakers.get(name)
  }

  /** Every breaker, sorted by name (GET /actuator/circuitbreakers lists them so). */
  all (): readonly CircuitBreaker[] {
    return this.#sorted
  }
}
