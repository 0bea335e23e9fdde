// The write coalescer, pure: single items gathered into batches by count, bytes and age, sent with bounded concurrency, one result per item.
import { performance } from 'node:perf_hooks'

/** Items per batch: the original sprint plan's BulkProcessor batch size. */
export const DEFAULT_BULK_BATCH_SIZE = 1000
/** Bytes per batch: 5 MiB. */
export const DEFAULT_BULK_MAX_BATCH_BYTES = 5 * 1024 * 1024
/** Milliseconds the oldest pending item waits for company before its batch goes anyway. */
export const DEFAULT_BULK_MAX_WAIT_MS = 50
/** Batches in flight at once. */
export const DEFAULT_BULK_CONCURRENCY = 2
/** Items accepted and not yet finished (pending plus in flight) beyond which `add` refuses. */
export const DEFAULT_BULK_MAX_PENDING = 100_000

/**
 * Sends one batch. Resolves with one result per item, in the batch's order; an Error in a slot fails that item only
 * (graphql/dataloader's batch function contract). Rejecting fails every item of the batch with that reason. It must
 * settle: the coalescer sets no deadline of its own (the bulk writer bounds it with the route's timeout and retries).
 */
export type BulkDispatch<T, R> = (batch: readonly T[]) => Promise<ReadonlyArray<R | Error>>

/** Where the coalescer reads time and sets its one timer, in milliseconds. Tests pass a fake one. */
export interface CoalescerClock {
  now (): number
  setTimeout (callback: () => void, ms: number): unknown
  clearTimeout (handle: unknown): void
}

export interface CoalescerOptions<T, R> {
  /** Sends one batch; see BulkDispatch. */
  readonly dispatch: BulkDispatch<T, R>
  /**
   * A batch goes as soon as this many items are pending, and never holds more.
   * @default 1000
   */
  readonly batchSize?: number
  /**
   * A batch goes as soon as the pending items' bytes reach this, and is cut before the item that would push it past
   * this. An item larger than this goes alone in its own batch (the HTTP layer limits body size, not the coalescer).
   * @default 5242880 (5 MiB)
   */
  readonly maxBatchBytes?: number
  /**
   * Milliseconds the oldest pending item waits for a fuller batch before its batch goes anyway. 0 sends every item
   * as soon as a slot is free.
   * @default 50
   */
  readonly maxWaitMs?: number
  /**
   * Batches in flight at once; further batches wait, still pending, and go oldest first as slots free.
   * @default 2
   */
  readonly concurrency?: number
  /**
   * Items accepted and not yet finished (pending plus in flight); one more is refused with CoalescerFullError.
   * @default 100000
   */
  readonly maxPending?: number
  /**
   * Time and the maxWait timer. Ages are relative, so the default is the monotonic clock.
   * @default performance.now, setTimeout, clearTimeout
   */
  readonly clock?: CoalescerClock
  /** Called as each batch is sent, with its items and bytes: feeds `bulk_batch_size`. Must not throw. */
  readonly onBatch?: (size: number, bytes: number) => void
  /**
   * Called as each batch settles, with its items, how long dispatch took in ms, and whether the whole batch failed
   * (dispatch rejected or answered the wrong number of results; a per-item Error is not a batch failure): feeds
   * `bulk_flush_duration_seconds`. Must not throw.
   */
  readonly onBatchSettled?: (size: number, durationMs: number, failed: boolean) => void
}

/** `add` refused an item: `maxPending` items are accepted and not finished. Answer 503 with Retry-After. */
export class CoalescerFullError extends Error {
  override readonly name = 'CoalescerFullError'
  /**
   * @param retryAfterMs a hint, not a promise: how long the last batch took (a slot's worth of items frees when a
   *   batch settles), at least maxWaitMs, rounded up
   */
  constructor (readonly maxPending: number, readonly retryAfterMs: number) {
    super(`${maxPending} items are already pending or in flight (options.maxPending); retry in ${retryAfterMs} ms`)
  }
}

/** `add` after `close()`: the gateway is shutting down. */
export class CoalescerClosedError extends Error {
  override readonly name = 'CoalescerClosedError'
  constructor () {
    super('the coalescer is closed: it accepts no new items')
  }
}

interface Entry<T, R> {
  readonly item: T
  readonly bytes: number
  /** The clock's time at acceptance: maxWaitMs counts from here. */
  readonly at: number
  /** Acceptance order from 0: batches are contiguous runs of it, and flush() waits for every seq up to its own. */
  readonly seq: number
  readonly resolve: (result: R) => void
  readonly reject: (reason: unknown) => void
}

interface Batch<T, R> {
  readonly entries: ReadonlyArray<Entry<T, R>>
  readonly firstSeq: number
  readonly startedAt: number
}

interface FlushWaiter {
  readonly seq: number
  readonly resolve: () => void
}

/** A dispatch's results matched to its batch, or why they cannot be. */
export type Outcome<R> =
  | { readonly ok: true, readonly results: ReadonlyArray<R | Error> }
  | { readonly ok: false, readonly reason: unknown }

/** Node's monotonic clock and timers: the default of the coalescer and of the async sender. */
export const monotonicClock: CoalescerClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => { clearTimeout(handle as NodeJS.Timeout) }
}

/**
 * Semantics:
 * - Items leave in arrival order: each batch is the oldest pending items, cut at `batchSize` items or before the item
 *   that would pass `maxBatchBytes`. Batches are sent in that order, but with `concurrency` > 1 a later batch may
 *   settle (and reach the upstream) before an earlier one.
 * - A batch goes when it is full (count or bytes), when its oldest item is `maxWaitMs` old, or on flush(); and only
 *   while fewer than `concurrency` batches are in flight. Otherwise its items stay pending, counted toward
 *   `maxPending`, and go as soon as a batch settles.
 * - Each `add` settles with its own slot of its batch's results: dataloader's contract, so an Error in a slot fails
 *   that item, and a rejected dispatch or a result array of the wrong length fails the whole batch (and no other).
 * - Past `maxPending`, `add` refuses at once; nothing accepted is ever dropped. Retrying is the dispatcher's job.
 * - One timer at most, for the oldest pending item; none while nothing is pending, so an idle coalescer keeps no
 *   process alive.
 */
export class Coalescer<T, R> {
  readonly batchSize: number
  readonly maxBatchBytes: number
  readonly maxWaitMs: number
  readonly concurrency: number
  readonly maxPending: number
  readonly #dispatch: BulkDispatch<T, R>
  readonly #clock: CoalescerClock
  readonly #onBatch: CoalescerOptions<T, R>['onBatch']
  readonly #onBatchSettled: CoalescerOptions<T, R>['onBatchSettled']
  /** Pending entries are #queue[#head...]; the sent ones before #head are dropped in bulk (#compact), not one shift each. */
  #queue: Array<Entry<T, R>> = []
  #head = 0
  #pendingBytes = 0
  /** Sent and not settled, oldest first (batches settle in any order). */
  readonly #inFlight: Array<Batch<T, R>> = []
  #inFlightItems = 0
  #nextSeq = 0
  /** Entries up to this seq go without waiting for a full batch: set by flush() and by the maxWait timer. */
  #dueSeq = -1
  /** The maxWait timer, armed for the pending entry `seq`. */
  #timer: { readonly seq: number, readonly handle: unknown } | null = null
  readonly #flushWaiters: FlushWaiter[] = []
  #lastBatchMs = 0
  #closed = false

  constructor (options: CoalescerOptions<T, R>) {
    if (typeof options.dispatch !== 'function') {
      throw new TypeError(`expected options.dispatch to be a function, got ${typeof options.dispatch}`)
    }
    this.batchSize = positiveInteger('batchSize', options.batchSize ?? DEFAULT_BULK_BATCH_SIZE)
    this.maxBatchBytes = positiveInteger('maxBatchBytes', options.maxBatchBytes ?? DEFAULT_BULK_MAX_BATCH_BYTES)
    this.concurrency = positiveInteger('concurrency', options.concurrency ?? DEFAULT_BULK_CONCURRENCY)
    this.maxPending = positiveInteger('maxPending', options.maxPending ?? DEFAULT_BULK_MAX_PENDING)
    const maxWaitMs = options.maxWaitMs ?? DEFAULT_BULK_MAX_WAIT_MS
    if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) {
      throw new RangeError(`expected options.maxWaitMs to be a non-negative number of milliseconds, got ${String(maxWaitMs)}`)
    }
    this.maxWaitMs = maxWaitMs
    this.#dispatch = options.dispatch
    this.#clock = options.clock ?? monotonicClock
    this.#onBatch = options.onBatch
    this.#onBatchSettled = options.onBatchSettled
  }

  /** Items accepted and waiting to be sent. */
  get pending (): number {
    return this.#queue.length - this.#head
  }

  /** Items in sent batches that have not settled yet. */
  get inFlight (): number {
    return this.#inFlightItems
  }

  /** How long the oldest pending item has waited, in ms; 0 when nothing is pending. */
  get oldestPendingAgeMs (): number {
    const head = this.#queue[this.#head]
    return head === undefined ? 0 : Math.max(0, this.#clock.now() - head.at)
  }

  /** Whether `add` refuses for maxPending now: as many items are waiting or in flight. */
  get full (): boolean {
    return this.pending + this.#inFlightItems >= this.maxPending
  }

  /**
   * The wait a refusal suggests, in ms: how long the last batch took (a batch's worth of items frees when one
   * settles), at least maxWaitMs, rounded up.
   */
  get retryAfterMs (): number {
    return Math.ceil(Math.max(this.maxWaitMs, this.#lastBatchMs))
  }

  /** Whether close() was called: every add is refused. */
  get closed (): boolean {
    return this.#closed
  }

  /**
   * Queues one item; settles with its slot of its batch's results, or rejects with that slot's Error or the batch's
   * failure. Rejects at once, queuing nothing, with CoalescerFullError past maxPending, CoalescerClosedError after
   * close(), and RangeError for a `bytes` that is not a non-negative number.
   * @param bytes the item's size as sent upstream, for maxBatchBytes
   */
  add (item: T, bytes: number): Promise<R> {
    if (!Number.isFinite(bytes) || bytes < 0) {
      return Promise.reject(new RangeError(`expected bytes to be a non-negative number, got ${String(bytes)}`))
    }
    if (this.#closed) return Promise.reject(new CoalescerClosedError())
    if (this.full) return Promise.reject(new CoalescerFullError(this.maxPending, this.retryAfterMs))
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, bytes, at: this.#clock.now(), seq: this.#nextSeq++, resolve, reject })
      this.#pendingBytes += bytes
      this.#pump()
    })
  }

  /**
   * Sends everything pending now, without waiting for maxWait (still `concurrency` batches at a time), and resolves
   * once every item accepted before the call has settled. Items added later may ride along but are not waited for,
   * so it resolves under continuous load too.
   */
  async flush (): Promise<void> {
    const through = this.#nextSeq - 1
    this.#dueSeq = through
    this.#pump()
    if (this.#oldestUnsettledSeq() > through) return
    await new Promise<void>((resolve) => { this.#flushWaiters.push({ seq: through, resolve }) })
  }

  /**
   * For graceful shutdown: refuses every later add (CoalescerClosedError), then flush(). Nothing is abandoned: it
   * resolves once every accepted item has settled. Calling it again is harmless.
   */
  async close (): Promise<void> {
    this.#closed = true
    await this.flush()
  }

  /** Sends batches while a slot is free and the oldest pending items make a full or due batch, then sets the timer. */
  #pump (): void {
    while (this.#inFlight.length < this.concurrency) {
      const head = this.#queue[this.#head]
      if (head === undefined) break
      // Below both limits the batch can only be cut short, so it waits unless its oldest item is due.
      if (this.pending < this.batchSize && this.#pendingBytes < this.maxBatchBytes && !this.#isDue(head)) break
      this.#send(head)
    }
    this.#arm()
  }

  #isDue (entry: Entry<T, R>): boolean {
    return entry.seq <= this.#dueSeq || this.#clock.now() - entry.at >= this.maxWaitMs
  }

  #send (head: Entry<T, R>): void {
    const start = this.#head
    const limit = Math.min(this.#queue.length, start + this.batchSize)
    let end = start
    let bytes = 0
    while (end < limit) {
      const next = (this.#queue[end] as Entry<T, R>).bytes
      // The first item always goes, so one larger than maxBatchBytes is sent alone rather than stuck forever.
      if (end > start && bytes + next > this.maxBatchBytes) break
      bytes += next
      end++
    }
    const entries = this.#queue.slice(start, end)
    this.#head = end
    this.#pendingBytes -= bytes
    this.#compact()
    const batch: Batch<T, R> = { entries, firstSeq: head.seq, startedAt: this.#clock.now() }
    this.#inFlight.push(batch)
    this.#inFlightItems += entries.length
    const items = entries.map((entry) => entry.item)
    this.#onBatch?.(items.length, bytes)
    this.#run(batch, items)
  }

  #compact (): void {
    if (this.#head === this.#queue.length) {
      this.#queue = []
      this.#head = 0
      // Resets any drift of fractional byte counts.
      this.#pendingBytes = 0
    } else if (this.#head * 2 >= this.#queue.length) {
      // Moving the rest only once as many were sent keeps each item's share of the moves constant.
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
  }

  /** Calls dispatch at once and settles the batch's items when it answers; a synchronous throw counts as a rejection. */
  #run (batch: Batch<T, R>, items: readonly T[]): void {
    let answered: Promise<ReadonlyArray<R | Error>>
    try {
      answered = this.#dispatch(items)
    } catch (reason) {
      this.#settle(batch, { ok: false, reason })
      return
    }
    answered.then(
      (results) => { this.#settle(batch, checkResults(results, items.length)) },
      (reason: unknown) => { this.#settle(batch, { ok: false, reason }) }
    )
  }

  #settle (batch: Batch<T, R>, outcome: Outcome<R>): void {
    this.#inFlight.splice(this.#inFlight.indexOf(batch), 1)
    this.#inFlightItems -= batch.entries.length
    const durationMs = this.#clock.now() - batch.startedAt
    this.#lastBatchMs = durationMs
    batch.entries.forEach((entry, i) => {
      if (!outcome.ok) {
        entry.reject(outcome.reason)
        return
      }
      const result = outcome.results[i]
      if (result instanceof Error) entry.reject(result)
      else entry.resolve(result as R)
    })
    this.#onBatchSettled?.(batch.entries.length, durationMs, !outcome.ok)
    this.#pump()
    const oldest = this.#oldestUnsettledSeq()
    let waiter = this.#flushWaiters[0]
    while (waiter !== undefined && waiter.seq < oldest) {
      this.#flushWaiters.shift()
      waiter.resolve()
      waiter = this.#flushWaiters[0]
    }
  }

  /** The first seq not settled yet: batches go out in seq order, so it is the oldest in-flight batch's, or the oldest pending item's. */
  #oldestUnsettledSeq (): number {
    return this.#inFlight[0]?.firstSeq ?? this.#queue[this.#head]?.seq ?? this.#nextSeq
  }

  /** Keeps the one timer on the oldest pending item, while it is not due yet. */
  #arm (): void {
    const head = this.#queue[this.#head]
    if (head !== undefined && this.#timer?.seq === head.seq) return
    this.#disarm()
    if (head === undefined || head.seq <= this.#dueSeq) return
    const waitMs = head.at + this.maxWaitMs - this.#clock.now()
    // Due and still pending means every slot is taken: the next settling batch sends it, no timer needed.
    if (waitMs <= 0) return
    const seq = head.seq
    this.#timer = { seq, handle: this.#clock.setTimeout(() => { this.#onTimer(seq) }, waitMs) }
  }

  #disarm (): void {
    if (this.#timer === null) return
    this.#clock.clearTimeout(this.#timer.handle)
    this.#timer = null
  }

  #onTimer (seq: number): void {
    this.#timer = null
    // The timer decides, not a fresh clock reading: Node starts timers from the event loop's cached time, so one can
    // fire a little before now() - at reaches maxWaitMs, and re-arming for the rest would only delay the batch.
    this.#dueSeq = Math.max(this.#dueSeq, seq)
    this.#pump()
  }
}

/** An option that counts something: a positive integer, or a RangeError naming it. */
export function positiveInteger (name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`expected options.${name} to be a positive integer, got ${String(value)}`)
  return value
}

/** dataloader's rule: anything but one result per item cannot be matched to the items, so the whole batch fails. */
export function checkResults<R> (results: unknown, size: number): Outcome<R> {
  if (Array.isArray(results) && results.length === size) return { ok: true, results }
  const got = Array.isArray(results) ? results.length : results === null ? 'null' : typeof results
  return { ok: false, reason: new TypeError(`expected dispatch to resolve with ${size} results (one per item, in order), got ${got}`) }
}
