// One circuit breaker per route, by route id, all publishing on one set of topics (logging and metrics subscribe).
import { isDeepStrictEqual } from 'node:util'
import type { RouteConfig } from '../config/index.js'
import { CircuitBreaker } from './circuit-breaker.js'
import { BreakerEvents } from './events.js'

export interface BreakerRegistryOptions {
  /**
   * The clock shared by every breaker, in milliseconds.
   * @default Date.now
   */
  readonly now?: () => number
  /**
   * The topics every breaker publishes on. Pass a set to keep its subscribers across registries (a reload that
   * rebuilds the breakers); subscribe to `registry.events` otherwise.
   * @default a new BreakerEvents
   */
  readonly events?: BreakerEvents
  /**
   * Events kept per breaker for GET /actuator/circuitbreakerevents.
   * @default 100
   */
  readonly eventCapacity?: number
}

export class BreakerRegistry {
  /** Where every breaker of this registry publishes its transitions, recorded calls and refusals. */
  readonly events: BreakerEvents
  readonly #options: { readonly now?: () => number, readonly eventCapacity?: number }
  #breakers: ReadonlyMap<string, CircuitBreaker> = new Map()
  #sorted: readonly CircuitBreaker[] = []

  constructor (routes: readonly Pick<RouteConfig, 'id' | 'breaker'>[], options: BreakerRegistryOptions = {}) {
    this.events = options.events ?? new BreakerEvents()
    this.#options = { now: options.now, eventCapacity: options.eventCapacity }
    this.update(routes)
  }

  /**
   * The breakers of `routes` from now on: a route whose id and breaker settings are unchanged keeps its breaker (its
   * state, window and events); a new or changed one gets a new breaker, CLOSED; a removed route's breaker goes.
   */
  update (routes: readonly Pick<RouteConfig, 'id' | 'breaker'>[]): void {
    const breakers = new Map<string, CircuitBreaker>()
    for (const route of routes) {
      const name = route.id
      if (breakers.has(name)) throw new Error(`expected route ids to be unique, got ${name} twice`)
      const kept = this.#breakers.get(name)
      breakers.set(name, kept !== undefined && isDeepStrictEqual(kept.config, route.breaker)
        ? kept
        : new CircuitBreaker(name, route.breaker, { ...this.#options, events: this.events }))
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
