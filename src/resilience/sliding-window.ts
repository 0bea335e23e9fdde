// A time-based sliding window of call outcomes (Resilience4j's SlidingTimeWindowMetrics): fixed buckets, running totals, no timers.

/** What the window holds right now. `calls` counts successes and failures; ignored calls are never recorded. */
export interface WindowTotals {
  readonly calls: number
  readonly failures: number
  /** Slow calls, successful or failed. */
  readonly slowCalls: number
  readonly slowFailures: number
}

/** Bucket width: a tenth of the window, at most one second (Resilience4j buckets per second), at least 1 ms. */
export const MAX_BUCKET_MS = 1000

interface Bucket {
  epoch: number
  calls: number
  failures: number
  slowCalls: number
  slowFailures: number
}

/**
 * Counts calls over the last `windowMs`, in `ceil(windowMs / bucketMs)` buckets: memory is fixed whatever the call rate.
 * A call leaves the window between `windowMs - bucketMs` and `windowMs` after it was recorded (the bucket granularity).
 * Time comes from the caller, so the window works with any clock and never starts a timer; a clock that goes back
 * is treated as standing still.
 */
export class SlidingWindow {
  readonly bucketMs: number
  readonly #buckets: Bucket[]
  #headEpoch = Number.NEGATIVE_INFINITY
  #calls = 0
  #failures = 0
  #slowCalls = 0
  #slowFailures = 0

  constructor (windowMs: number) {
    if (!(windowMs > 0)) throw new RangeError(`expected windowMs to be a positive number, got ${windowMs}`)
    this.bucketMs = Math.max(1, Math.min(MAX_BUCKET_MS, Math.ceil(windowMs / 10)))
    const count = Math.ceil(windowMs / this.bucketMs)
    this.#buckets = Array.from({ length: count }, () => ({ epoch: Number.NEGATIVE_INFINITY, calls: 0, failures: 0, slowCalls: 0, slowFailures: 0 }))
  }

  record (nowMs: number, failed: boolean, slow: boolean): WindowTotals {
    const bucket = this.#advance(nowMs)
    const failures = failed ? 1 : 0
    const slowCalls = slow ? 1 : 0
    const slowFailures = failed && slow ? 1 : 0
    bucket.calls++
    bucket.failures += failures
    bucket.slowCalls += slowCalls
    bucket.slowFailures += slowFailures
    this.#calls++
    this.#failures += failures
    this.#slowCalls += slowCalls
    this.#slowFailures += slowFailures
    return this.totals(nowMs)
  }

  totals (nowMs: number): WindowTotals {
    this.#advance(nowMs)
    return { calls: this.#calls, failures: this.#failures, slowCalls: this.#slowCalls, slowFailures: this.#slowFailures }
  }

  reset (): void {
    for (const bucket of this.#buckets) this.#clear(bucket, Number.NEGATIVE_INFINITY)
    this.#headEpoch = Number.NEGATIVE_INFINITY
    this.#calls = this.#failures = this.#slowCalls = this.#slowFailures = 0
  }

  /** Moves the head to `nowMs`'s bucket, evicting the buckets that fell out of the window; returns the head bucket. */
  #advance (nowMs: number): Bucket {
    const size = this.#buckets.length
    const epoch = Math.floor(nowMs / this.bucketMs)
    if (epoch > this.#headEpoch) {
      // At most one pass over the ring, however long the clock jumped.
      const from = Math.max(this.#headEpoch + 1, epoch - size + 1)
      for (let e = from; e <= epoch; e++) this.#clear(this.#bucketAt(e), e)
      this.#headEpoch = epoch
    }
    return this.#bucketAt(this.#headEpoch)
  }

  #bucketAt (epoch: number): Bucket {
    const size = this.#buckets.length
    return this.#buckets[((epoch % size) + size) % size] as Bucket
  }

  #clear (bucket: Bucket, epoch: number): void {
    this.#calls -= bucket.calls
    this.#failures -= bucket.failures
    this.#slowCalls -= bucket.slowCalls
    this.#slowFailures -= bucket.slowFailures
    bucket.epoch = epoch
    bucket.calls = bucket.failures = bucket.slowCalls = bucket.slowFailures = 0
  }
}
