// The one fake clock of the tests: time moves only when the test moves it, and timers run at their time, earliest first.
import type { CoalescerClock } from '../../src/bulk/index.js'

interface FakeTimer {
  readonly at: number
  readonly callback: () => void
}

/** Runs every queued promise callback: one event-loop turn, no time on any clock. */
export const turn = async (): Promise<void> => {
  await new Promise<void>((resolve) => { setImmediate(resolve) })
}

/**
 * A clock the test moves. `now()` is `base() + time`: `new FakeClock()` starts at 0 and stands still between moves;
 * `FakeClock.wall()` follows the wall clock plus what the test moved it, for code that also reads real dates (an
 * origin's Date header). `now` is bound, so it can be passed alone (`{ now: clock.now }`).
 */
export class FakeClock implements CoalescerClock {
  /** Ms the test moved the clock so far. */
  time = 0
  /** Timers set and not yet run nor cleared, by handle. */
  readonly timers = new Map<number, FakeTimer>()
  /** Timers set so far, cleared ones included. */
  armed = 0
  readonly #base: () => number
  #nextId = 1

  constructor (base: () => number = () => 0) {
    this.#base = base
  }

  /** A clock on the wall time, moved ahead by `advance`: entries go stale without waiting. */
  static wall (): FakeClock {
    return new FakeClock(Date.now)
  }

  readonly now = (): number => this.#base() + this.time

  setTimeout (callback: () => void, ms: number): number {
    const id = this.#nextId++
    this.armed++
    this.timers.set(id, { at: this.time + ms, callback })
    return id
  }

  clearTimeout (handle: unknown): void {
    this.timers.delete(handle as number)
  }

  /** Moves the clock by `ms`, running each timer due on the way at its own time. */
  advance (ms: number): void {
    const target = this.time + ms
    while (this.#runNext(target));
    this.time = target
  }

  /** As `advance`, with an event-loop turn before, after and between timers: the code reacts to each before the next. */
  async elapse (ms: number): Promise<void> {
    const target = this.time + ms
    await turn()
    while (this.#runNext(target)) await turn()
    this.time = target
    await turn()
  }

  /** Runs the earliest timer due by `target` at its time; false when there is none. */
  #runNext (target: number): boolean {
    let next: [number, FakeTimer] | undefined
    for (const entry of this.timers) {
      if (entry[1].at <= target && (next === undefined || entry[1].at < next[1].at)) next = entry
    }
    if (next === undefined) return false
    this.timers.delete(next[0])
    this.time = next[1].at
    next[1].callback()
    return true
  }
}
