// One route's circuit breaker: Resilience4j's state machine over a time-based sliding window, with an injectable clock and no timers.
import type { BreakerConfig } from '../config/index.js'
import { EventRing } from './event-ring.js'
import type { BreakerEvents } from './events.js'
import { SlidingWindow, type WindowTotals } from './sliding-window.js'
import type {
  BreakerCommand, BreakerEvent, BreakerEventType, BreakerSnapshot, BreakerStateName, CallKind, CallOutcome, Permit, Refusal,
  TransitionReason
} from './types.js'

/**
 * What HALF_OPEN refusals suggest as `retryAfterMs` once every trial permit is taken: the trials' outcome is not
 * known yet, so this is a hint (the smallest non-zero `Retry-After`), not a promise.
 */
export const DEFAULT_HALF_OPEN_RETRY_AFTER_MS = 1000

export interface CircuitBreakerOptions {
  /**
   * The clock, in milliseconds. Tests pass a fake one; the breaker never starts a timer.
   * @default Date.now
   */
  readonly now?: () => number
  /**
   * Where it publishes its transitions, recorded calls and refusals, named by `name` (the registry shares one set
   * among all breakers). None: it publishes nothing.
   */
  readonly events?: BreakerEvents
  /**
   * Events kept for GET /actuator/circuitbreakerevents; the oldest are dropped.
   * @default 100
   */
  readonly eventCapacity?: number
}

/**
 * The state machine, one variant per Resilience4j state; data that only means something in one state lives in it.
 *
 * ```
 * CLOSED --(failureThreshold consecutive failures | failure rate | slow-call rate)--> OPEN
 * OPEN --(first tryAcquire at/after retryAt)--> HALF_OPEN
 * HALF_OPEN --(halfOpenCalls trial successes)--> CLOSED      HALF_OPEN --(a trial fails)--> OPEN (longer wait)
 * any --(command)--> CLOSED | FORCED_OPEN | DISABLED | METRICS_ONLY
 * ```
 */
type State =
  | { readonly name: 'CLOSED', consecutiveFailures: number }
  /** `opens`: consecutive opens without a CLOSED in between (1 for the first), which sets the backoff. */
  | { readonly name: 'OPEN', readonly openedAt: number, readonly retryAt: number, readonly opens: number }
  /** Invariant: permitsLeft + inFlight + successes === halfOpenCalls. */
  | { readonly name: 'HALF_OPEN', readonly opens: number, permitsLeft: number, inFlight: number, successes: number }
  | { readonly name: 'FORCED_OPEN' }
  | { readonly name: 'DISABLED' }
  /** `exceeded`: a threshold is exceeded now, so its event is emitted once per crossing, not once per call. */
  | { readonly name: 'METRICS_ONLY', exceeded: boolean }

type EventDetail = Pick<BreakerEvent, 'errorMessage' | 'durationInMs' | 'stateTransition'>

/** An event as kept in the ring: BreakerEvent without its name and with the time as a number. */
interface RecordedEvent {
  readonly type: BreakerEventType
  readonly at: number
  readonly extra: EventDetail
}

/** The permit handed out by tryAcquire: knows its breaker, the state it was issued in, and whether it was used. */
class Ticket implements Permit {
  readonly permitted = true as const
  settled = false
  constructor (readonly owner: CircuitBreaker, readonly generation: number, readonly trial: boolean) {}
}

type RateTrigger = 'failureRate' | 'slowCallRate'

/**
 * Semantics (Resilience4j's, except where noted):
 * - A call is slow when `durationMs > slowCallThresholdMs` (Resilience4j: "longer than" the threshold).
 * - Rates are -1 until the window holds `minimumCalls`; a rate trigger fires at `rate >= threshold`.
 * - `slowCallRateThreshold: 100` is off (the "100 = off in effect"; Resilience4j would open at 100% slow calls).
 *   An unset `failureRateThreshold` is off too and shows as 100 in snapshots.
 * - `failureThreshold` consecutive failures open it too (Breakwater's addition; a success resets the count, an ignored call does not).
 * - HALF_OPEN: exactly `halfOpenCalls` trials; any trial failure reopens, all succeeding closes. Slow trials do not
 *   decide anything. An ignored trial frees its permit.
 * - OPEN -> HALF_OPEN is lazy (automaticTransitionFromOpenToHalfOpenEnabled=false): `state` stays OPEN until a call comes.
 * - The k-th consecutive open waits `recoveryTimeoutMs * multiplier^(k-1)`, capped at `recoveryBackoff.maxMs`.
 * - The window and notPermittedCalls start afresh on entering CLOSED, FORCED_OPEN, DISABLED or METRICS_ONLY; OPEN and
 *   HALF_OPEN keep them (calls in flight when it opened are still recorded). DISABLED and FORCED_OPEN record nothing.
 * - A command for the current state changes nothing but resets the window (event RESET, no transition).
 */
export class CircuitBreaker {
  readonly name: string
  readonly config: BreakerConfig
  readonly #now: () => number
  readonly #topics: BreakerEvents | undefined
  readonly #window: SlidingWindow
  readonly #events: EventRing<RecordedEvent>
  #state: State
  /** Bumped on every state change, so permits from an earlier state (or an earlier HALF_OPEN) are told apart. */
  #generation = 0
  #notPermitted = 0

  constructor (name: string, config: BreakerConfig, options: CircuitBreakerOptions = {}) {
    this.name = name
    this.config = config
    this.#now = options.now ?? Date.now
    this.#topics = options.events
    this.#window = new SlidingWindow(config.slidingWindowMs)
    this.#events = new EventRing(options.eventCapacity)
    this.#state = config.mode === 'observe'
      ? { name: 'METRICS_ONLY', exceeded: false }
      : config.mode === 'off' ? { name: 'DISABLED' } : { name: 'CLOSED', consecutiveFailures: 0 }
  }

  get state (): BreakerStateName {
    return this.#state.name
  }

  /** Asks to make one call. A Permit must go back to `onResult` once the call is over, whatever happened. */
  tryAcquire (): Permit | Refusal {
    const state = this.#state
    switch (state.name) {
      case 'CLOSED':
      case 'METRICS_ONLY':
      case 'DISABLED':
        return new Ticket(this, this.#generation, false)
      case 'OPEN': {
        const now = this.#now()
        if (now < state.retryAt) return this.#refuse('OPEN', state.retryAt - now)
        const halfOpen: State = { name: 'HALF_OPEN', opens: state.opens, permitsLeft: this.config.halfOpenCalls, inFlight: 0, successes: 0 }
        this.#moveTo(halfOpen, 'recoveryTimeout')
        return this.#takeTrial(halfOpen)
      }
      case 'HALF_OPEN':
        return this.#takeTrial(state)
      case 'FORCED_OPEN':
        return this.#refuse('FORCED_OPEN', this.config.recoveryTimeoutMs)
    }
  }

  /**
   * Whether `tryAcquire` would refuse a call now. Changes nothing and records nothing, so a caller may ask before it
   * has anything to hand a permit to (the gateway's fast-fail path asks before any per-request work).
   */
  refuses (): boolean {
    const state = this.#state
    switch (state.name) {
      case 'OPEN': return this.#now() < state.retryAt
      case 'HALF_OPEN': return state.permitsLeft === 0
      case 'FORCED_OPEN': return true
      default: return false
    }
  }

  /**
   * Records how a permitted call went. Only the first call per permit counts; a permit from another breaker is ignored.
   * @param durationMs how long the call took, for the slow-call rule and the calls histogram
   * @param errorMessage shown in the ERROR event
   */
  onResult (permit: Permit, outcome: CallOutcome, durationMs: number, errorMessage?: string): void {
    if (!(permit instanceof Ticket) || permit.owner !== this || permit.settled) return
    permit.settled = true
    const state = this.#state
    if (state.name === 'DISABLED' || state.name === 'FORCED_OPEN') return
    const isTrial = state.name === 'HALF_OPEN' && permit.trial && permit.generation === this.#generation
    if (isTrial) state.inFlight--

    const detail = errorMessage === undefined ? { durationInMs: durationMs } : { durationInMs: durationMs, errorMessage }
    if (outcome === 'ignored') {
      if (isTrial) state.permitsLeft++
      this.#emit('IGNORED_ERROR', detail)
      this.#publishCall('ignored', durationMs)
      return
    }

    const failed = outcome === 'failure'
    const totals = this.#window.record(this.#now(), failed, durationMs > this.config.slowCallThresholdMs)
    if (failed) this.#emit('ERROR', detail)
    else this.#emit('SUCCESS', { durationInMs: durationMs })
    this.#publishCall(failed ? 'failed' : 'successful', durationMs)

    switch (state.name) {
      case 'CLOSED': {
        if (failed) state.consecutiveFailures++
        else state.consecutiveFailures = 0
        if (state.consecutiveFailures >= this.config.failureThreshold) {
          this.#open(1, 'failureThreshold')
          return
        }
        const trigger = this.#rateTrigger(totals)
        if (trigger !== null) {
          this.#emit(trigger === 'failureRate' ? 'FAILURE_RATE_EXCEEDED' : 'SLOW_CALL_RATE_EXCEEDED')
          this.#open(1, trigger)
        }
        return
      }
      case 'METRICS_ONLY': {
        const trigger = this.#rateTrigger(totals)
        if (trigger !== null && !state.exceeded) this.#emit(trigger === 'failureRate' ? 'FAILURE_RATE_EXCEEDED' : 'SLOW_CALL_RATE_EXCEEDED')
        state.exceeded = trigger !== null
        return
      }
      case 'HALF_OPEN':
        // Only this HALF_OPEN's trials decide; a call let through before it is counted in the window and nothing more.
        if (isTrial && failed) this.#open(state.opens + 1, 'halfOpenFailure')
        else if (isTrial && ++state.successes === this.config.halfOpenCalls) this.#close('halfOpenSuccess')
        break
      case 'OPEN':
        // A call that was in flight when the breaker opened: counted in the window, decides nothing.
        break
    }
  }

  /** Applies an operator command (POST /actuator/circuitbreakers/{name}); returns the state it leaves the breaker in. */
  transition (command: BreakerCommand): BreakerStateName {
    const next: State = command === 'CLOSE'
      ? { name: 'CLOSED', consecutiveFailures: 0 }
      : command === 'FORCE_OPEN'
        ? { name: 'FORCED_OPEN' }
        : command === 'DISABLE' ? { name: 'DISABLED' } : { name: 'METRICS_ONLY', exceeded: false }
    this.#resetMetrics()
    if (next.name === this.#state.name) {
      this.#state = next
      this.#generation++
      this.#emit('RESET')
    } else {
      this.#moveTo(next, 'command')
    }
    return next.name
  }

  /** Resilience4j's ten figures for the actuator and the health indicator. */
  snapshot (): BreakerSnapshot {
    const totals = this.#window.totals(this.#now())
    const rate = (count: number): number => totals.calls === 0 || totals.calls < this.config.minimumCalls ? -1 : count / totals.calls * 100
    return {
      name: this.name,
      state: this.#state.name,
      failureRate: rate(totals.failures),
      failureRateThreshold: this.config.failureRateThreshold ?? 100,
      slowCallRate: rate(totals.slowCalls),
      slowCallRateThreshold: this.config.slowCallRateThreshold,
      bufferedCalls: totals.calls,
      failedCalls: totals.failures,
      slowCalls: totals.slowCalls,
      slowFailedCalls: totals.slowFailures,
      notPermittedCalls: this.#notPermitted
    }
  }

  /** The latest events, oldest first. */
  events (): readonly BreakerEvent[] {
    return this.#events.toArray().map(({ type, at, extra }) => ({
      circuitBreakerName: this.name, type, creationTime: new Date(at).toISOString(), ...extra
    }))
  }

  #takeTrial (state: Extract<State, { name: 'HALF_OPEN' }>): Permit | Refusal {
    if (state.permitsLeft === 0) return this.#refuse('HALF_OPEN', DEFAULT_HALF_OPEN_RETRY_AFTER_MS)
    state.permitsLeft--
    state.inFlight++
    return new Ticket(this, this.#generation, true)
  }

  #refuse (state: BreakerStateName, retryAfterMs: number): Refusal {
    this.#notPermitted++
    this.#emit('NOT_PERMITTED')
    const topic = this.#topics?.notPermitted
    if (topic?.hasSubscribers === true) topic.publish({ name: this.name })
    return { permitted: false, state, retryAfterMs }
  }

  /** Which rate trigger fires, if any: only once the window holds `minimumCalls`, at `rate >= threshold`. */
  #rateTrigger (totals: WindowTotals): RateTrigger | null {
    const { failureRateThreshold, slowCallRateThreshold, minimumCalls } = this.config
    if (totals.calls === 0 || totals.calls < minimumCalls) return null
    if (failureRateThreshold !== null && totals.failures / totals.calls * 100 >= failureRateThreshold) return 'failureRate'
    if (slowCallRateThreshold < 100 && totals.slowCalls / totals.calls * 100 >= slowCallRateThreshold) return 'slowCallRate'
    return null
  }

  #open (opens: number, reason: TransitionReason): void {
    const now = this.#now()
    this.#moveTo({ name: 'OPEN', openedAt: now, retryAt: now + this.#openWaitMs(opens), opens }, reason)
  }

  /** The k-th consecutive open waits recoveryTimeoutMs * multiplier^(k-1), capped at maxMs. */
  #openWaitMs (opens: number): number {
    const { recoveryTimeoutMs, recoveryBackoff } = this.config
    if (recoveryBackoff === null) return recoveryTimeoutMs
    return Math.min(recoveryBackoff.maxMs, recoveryTimeoutMs * recoveryBackoff.multiplier ** (opens - 1))
  }

  #close (reason: TransitionReason): void {
    this.#resetMetrics()
    this.#moveTo({ name: 'CLOSED', consecutiveFailures: 0 }, reason)
  }

  #resetMetrics (): void {
    this.#window.reset()
    this.#notPermitted = 0
  }

  #moveTo (next: State, reason: TransitionReason): void {
    const from = this.#state.name
    this.#state = next
    this.#generation++
    this.#emit('STATE_TRANSITION', { stateTransition: `${from}_TO_${next.name}` })
    const topic = this.#topics?.transition
    if (topic?.hasSubscribers === true) topic.publish({ name: this.name, from, to: next.name, reason })
  }

  #publishCall (kind: CallKind, durationMs: number): void {
    // Once per proxied call: build the event only when someone listens.
    const topic = this.#topics?.call
    if (topic?.hasSubscribers === true) topic.publish({ name: this.name, kind, durationMs })
  }

  #emit (type: BreakerEventType, extra: EventDetail = {}): void {
    // A timestamp, not its ISO text: a SUCCESS event per call must stay cheap; events() formats the few that are read.
    this.#events.push({ type, at: this.#now(), extra })
  }
}
