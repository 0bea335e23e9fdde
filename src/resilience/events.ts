// What the breakers publish: state changes, recorded calls and refusals, as topics that the log and metrics subscribe to.
import { Topic } from '../core/index.js'
import type { BreakerStateName, CallKind, TransitionReason } from './types.js'

/** `breaker.transition`: a breaker changed state (automatically or by command), published after the change. */
export interface BreakerTransitionEvent {
  /** The breaker's name: its route id. */
  readonly name: string
  readonly from: BreakerStateName
  readonly to: BreakerStateName
  readonly reason: TransitionReason
}

/** `breaker.call`: a breaker recorded a call (not in DISABLED or FORCED_OPEN): feeds `resilience4j_circuitbreaker_calls_seconds`. */
export interface BreakerCallEvent {
  readonly name: string
  readonly kind: CallKind
  readonly durationMs: number
}

/** `breaker.not-permitted`: a breaker refused a call: feeds `resilience4j_circuitbreaker_not_permitted_calls_total`. */
export interface BreakerNotPermittedEvent {
  readonly name: string
}

/**
 * The breakers' topics, one set per gateway. The actuator's event ring (/actuator/circuitbreakerevents) is kept by
 * each breaker itself and does not go through these.
 */
export class BreakerEvents {
  readonly transition = new Topic<BreakerTransitionEvent>('breaker.transition')
  readonly call = new Topic<BreakerCallEvent>('breaker.call')
  readonly notPermitted = new Topic<BreakerNotPermittedEvent>('breaker.not-permitted')
}
