// What the actuator needs from the rest of the gateway: a view of each breaker, the metrics, app info and readiness.
import type { BreakerCommand, BreakerEvent, BreakerSnapshot } from '../resilience/types.js'

/** One circuit breaker as the actuator sees it; the resilience registry's breakers satisfy it. */
export interface BreakerView {
  readonly name: string
  /** Its figures now, for health, /actuator/circuitbreakers and the scrape-time gauges. */
  snapshot: () => BreakerSnapshot
  /** Its recent events, oldest first (a bounded ring). */
  events: () => readonly BreakerEvent[]
  /** An operator's command from POST /actuator/circuitbreakers/{name}. */
  transition: (command: BreakerCommand) => void
}

/** The breakers by name, as the resilience BreakerRegistry offers them. */
export interface BreakerLookup {
  get: (name: string) => BreakerView | undefined
  all: () => Iterable<BreakerView>
}

/** GET /actuator/info. */
export interface AppInfo {
  readonly name: string
  readonly version: string
  readonly routes: ReadonlyArray<{ readonly id: string, readonly prefix: string }>
}
