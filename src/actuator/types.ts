// What the actuator needs from the rest of the gateway: a view of each breaker, the metrics, app info, readiness and the config's reloads.
import type { ConfigError } from '../config/index.js'
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

/** The config now serving, as GET /actuator/info shows it. */
export interface ConfigVersion {
  /** 1 at the start, one more at each successful reload. */
  readonly generation: number
  /** SHA-256 of the config file's bytes, hex. */
  readonly sha256: string
}

/** A reload that applied: POST /actuator/refresh's answer. */
export interface RefreshApplied {
  readonly generation: number
  readonly changed: readonly string[]
  readonly added: readonly string[]
  readonly removed: readonly string[]
  /** Settings that changed but take a restart, like `server.port`. */
  readonly restartRequired: readonly string[]
}

/** What POST /actuator/refresh did: applied, or refused with every problem of the file. */
export type RefreshResult =
  | { readonly applied: RefreshApplied }
  | { readonly refused: ConfigError }

/** What the actuator needs of the config reloader. */
export interface ConfigActuator {
  readonly current: () => ConfigVersion
  /** Reloads the config file; null when the gateway runs on a config object rather than a file. */
  readonly refresh: (() => Promise<RefreshResult>) | null
}
