// The consumer loop of an async bulk route: takes items from its queue in batches, sends them, then acks or dead-letters each.
import type { BulkItemResult } from './bulk-writer.js'
import {
  checkResults, DEFAULT_BULK_BATCH_SIZE, DEFAULT_BULK_CONCURRENCY, DEFAULT_BULK_MAX_BATCH_BYTES, DEFAULT_BULK_MAX_WAIT_MS,
  monotonicClock, positiveInteger, type CoalescerClock
} from './coalescer.js'
import type { BulkQueue, FailedItem, QueuedItem } from './queue.js'

/** Ms between looks at an idle queue with no `notify`: items other instances appended, left behind or redrove. */
export const DEFAULT_ASYNC_IDLE_POLL_MS = 250
/** The first wait after a queue command failed, in ms; it doubles with each failure in a row. */
export const ASYNC_QUEUE_RETRY_BASE_MS = 50
/** The longest wait between two tries while the queue fails (Redis away), in ms: as long as ioredis waits between reconnects. */
export const ASYNC_QUEUE_RETRY_MAX_MS = 1000
/** Characters of an upstream's answer kept in a dead letter's error. */
export const DEAD_LETTER_BODY_CHARS = 500
/**
 * The request header that carries a batch's item ids, comma-separated, in batch order, so that an upstream can
 * de-duplicate an item delivered twice (delivery is at least once). Ids never contain a comma.
 */
export const BULK_ITEM_IDS_HEADER = 'x-bulk-item-ids'

/** The value of BULK_ITEM_IDS_HEADER for a batch. */
export function bulkItemIds (items: readonly QueuedItem[]): string {
  return items.map((item) => item.id).join(',')
}

/**
 * Sends one batch: a BulkWriter's dispatch of the items' bodies, with BULK_ITEM_IDS_HEADER. Resolves with one result
 * per item, in order; an Error in a slot fails that item only, and a rejection fails them all.
 */
export type AsyncDispatch = (items: readonly QueuedItem[]) => Promise<ReadonlyArray<BulkItemResult | Error>>

export interface AsyncSenderOptions {
  /** The route's queue. */
  readonly queue: BulkQueue
  /** Sends one batch; see AsyncDispatch. It must settle: the BulkWriter bounds it with the route's timeout and retries. */
  readonly dispatch: AsyncDispatch
  /**
   * Items per batch at most, and per take.
   * @default 1000
   */
  readonly batchSize?: number
  /**
   * A batch is cut before the item that would push its bodies past this many bytes; an item larger than this goes alone.
   * @default 5242880 (5 MiB)
   */
  readonly maxBatchBytes?: number
  /**
   * Ms the oldest item taken waits for a fuller batch before its batch goes anyway, counted from its take on this
   * clock (never from its enqueue time, which is another host's clock). 0 sends what each take brings at once.
   * @default 50
   */
  readonly maxWaitMs?: number
  /**
   * Batches in flight at once. While every slot is taken the sender takes nothing, so the items stay in the queue
   * for other instances.
   * @default 2
   */
  readonly concurrency?: number
  /**
   * Ms between looks at the queue while nothing came and nothing waits (`notify` wakes the sender sooner).
   * @default 250
   */
  readonly idlePollMs?: number
  /**
   * Time and timers, in ms. Ages are relative, so the default is the monotonic clock. Tests pass a fake one.
   * @default performance.now, setTimeout, clearTimeout
   */
  readonly clock?: CoalescerClock
  /** Called with how many items of a batch the upstream accepted (2xx): feeds bulk_items_total{outcome="delivered"}. Must not throw. */
  readonly onDelivered?: (count: number) => void
  /**
   * Called, per distinct reason in a batch, with how many of its items were dead-lettered for it: feeds
   * bulk_items_total{outcome="failed"}. Must not throw.
   */
  readonly onFailed?: (count: number, reason: string) => void
  /** Called with each queue error (Redis away or slow); the sender waits and tries again. Must not throw. */
  readonly onError?: (error: Error) => void
}

/** One item taken and not settled. */
interface Held {
  readonly item: QueuedItem
  readonly bytes: number
  /** The clock's time at the take: maxWaitMs counts from here. */
  readonly takenAt: number
}

/**
 * Semantics:
 * - One loop per route: it takes up to `batchSize` items when a batch slot is free, and sends a batch when it has
 *   `batchSize` items or `maxBatchBytes` bytes, or when its oldest item is `maxWaitMs` old. Items leave in the
 *   queue's order; with `concurrency` > 1 a later batch may settle before an earlier one.
 * - An idle sender looks at the queue every `idlePollMs`, and at once on `notify()` (an append on this instance).
 * - Per item: a 2xx result is acknowledged (removed from the queue); any other status, an Error, a rejected dispatch
 *   or a result array of the wrong length dead-letters it with the reason. Retrying is the dispatcher's job.
 * - A queue error never stops the loop: it is reported to `onError`, and the take, ack or dead-letter is tried again
 *   after 50, 100, 200... ms (at most ASYNC_QUEUE_RETRY_MAX_MS). An item whose ack never got through is delivered
 *   again later: delivery is at least once, and the ids let the upstream tell.
 * - Everything taken and not settled is touched every third of the queue's `claimAfterMs`, so a batch that retries
 *   for long is not claimed and sent a second time by another instance meanwhile.
 */
export class AsyncSender {
  readonly batchSize: number
  readonly maxBatchBytes: number
  readonly maxWaitMs: number
  readonly concurrency: number
  readonly idlePollMs: number
  readonly #queue: BulkQueue
  readonly #dispatch: AsyncDispatch
  readonly #clock: CoalescerClock
  readonly #touchEveryMs: number
  readonly #onDelivered: AsyncSenderOptions['onDelivered']
  readonly #onFailed: AsyncSenderOptions['onFailed']
  readonly #onError: AsyncSenderOptions['onError']
  /** Taken and not sent yet, oldest first. */
  #buffer: Held[] = []
  #bufferBytes = 0
  /** Sent and not settled. */
  readonly #batches = new Set<readonly Held[]>()
  #sentItems = 0
  #loop: Promise<boolean> | null = null
  /** Resolves the loop's current wait; null while it is not waiting. */
  #wake: (() => void) | null = null
  #notified = false
  #stopping = false
  /** stop()'s deadline on the clock; Infinity until stop(). */
  #deadline = Number.POSITIVE_INFINITY
  /** Stopping over a queue that is not durable: a take came back short, so nothing is left to flush. */
  #drained = false
  /** Queue failures in a row, and when the next take may go. */
  #failures = 0
  #retryAt = Number.NEGATIVE_INFINITY
  #lastTouchAt = 0

  constructor (options: AsyncSenderOptions) {
    if (typeof options.dispatch !== 'function') throw new TypeError(`expected options.dispatch to be a function, got ${typeof options.dispatch}`)
    if (typeof options.queue?.take !== 'function') throw new TypeError('expected options.queue to be a BulkQueue')
    this.batchSize = positiveInteger('batchSize', options.batchSize ?? DEFAULT_BULK_BATCH_SIZE)
    this.maxBatchBytes = positiveInteger('maxBatchBytes', options.maxBatchBytes ?? DEFAULT_BULK_MAX_BATCH_BYTES)
    this.concurrency = positiveInteger('concurrency', options.concurrency ?? DEFAULT_BULK_CONCURRENCY)
    this.maxWaitMs = milliseconds('options.maxWaitMs', options.maxWaitMs ?? DEFAULT_BULK_MAX_WAIT_MS, true)
    this.idlePollMs = milliseconds('options.idlePollMs', options.idlePollMs ?? DEFAULT_ASYNC_IDLE_POLL_MS, false)
    this.#queue = options.queue
    this.#dispatch = options.dispatch
    this.#clock = options.clock ?? monotonicClock
    this.#touchEveryMs = options.queue.claimAfterMs / 3
    this.#onDelivered = options.onDelivered
    this.#onFailed = options.onFailed
    this.#onError = options.onError
  }

  /** Items taken from the queue by this sender and not settled yet: waiting for their batch, or in flight. */
  get inFlight (): number {
    return this.#buffer.length + this.#sentItems
  }

  /** Starts the loop; calling it again, or after stop(), does nothing. */
  start (): void {
    if (this.#loop !== null || this.#stopping) return
    this.#loop = this.#run()
  }

  /** An item was appended on this instance: look at the queue now rather than at the next poll. */
  notify (): void {
    if (this.#stopping) return
    this.#notified = true
    this.#wake?.()
  }

  /**
   * For graceful shutdown: takes nothing more from a durable queue and sends what it holds at once (no maxWait);
   * a queue that is not durable is drained too, since what stays in it is lost with the process. Resolves true once
   * all of it settled, or false at `timeoutMs`: items not settled then stay in a durable queue, to be sent again by
   * this consumer name after a restart or by another instance. Calling it again waits for the first call's deadline.
   */
  async stop (timeoutMs: number): Promise<boolean> {
    milliseconds('timeoutMs', timeoutMs, true)
    if (!this.#stopping) {
      this.#stopping = true
      this.#deadline = this.#clock.now() + timeoutMs
    }
    if (this.#loop === null) return true
    this.#wake?.()
    let timer: unknown
    const cut = new Promise<boolean>((resolve) => {
      timer = this.#clock.setTimeout(() => { resolve(false) }, Math.max(0, this.#deadline - this.#clock.now()))
    })
    try {
      return await Promise.race([this.#loop, cut])
    } finally {
      this.#clock.clearTimeout(timer)
    }
  }

  /** Resolves, once stopping, true when everything held settled (and a queue that is not durable is empty), false at the deadline. */
  async #run (): Promise<boolean> {
    for (;;) {
      if (this.#stopping) {
        if (this.#held() === 0 && (this.#queue.durable || this.#drained)) return true
        if (this.#clock.now() >= this.#deadline) return false
      }
      await this.#keepAlive()
      const full = this.#wantsItems() && await this.#take()
      this.#sendReady()
      // The take filled its ask: more may be waiting, so take again at once while there is room.
      if (full && this.#wantsItems()) continue
      await this.#wait(this.#waitMs())
    }
  }

  /** Resolves true when the queue gave every item asked for. */
  async #take (): Promise<boolean> {
    const ask = this.batchSize - this.#buffer.length
    this.#notified = false
    let items: QueuedItem[]
    try {
      items = await this.#queue.take(ask)
    } catch (err) {
      this.#report(err)
      this.#failures++
      this.#retryAt = this.#clock.now() + backoffMs(this.#failures)
      return false
    }
    this.#failures = 0
    const now = this.#clock.now()
    if (this.#held() === 0) this.#lastTouchAt = now
    for (const item of items) {
      this.#buffer.push({ item, bytes: item.body.length, takenAt: now })
      this.#bufferBytes += item.body.length
    }
    if (this.#stopping && items.length < ask) this.#drained = true
    return items.length === ask
  }

  /** Sends batches while a slot is free and the buffer makes a full or due one; when stopping, every batch is due. */
  #sendReady (): void {
    const now = this.#clock.now()
    while (this.#batches.size < this.concurrency) {
      const head = this.#buffer[0]
      if (head === undefined) return
      const full = this.#buffer.length >= this.batchSize || this.#bufferBytes >= this.maxBatchBytes
      if (!full && !this.#stopping && now - head.takenAt < this.maxWaitMs) return
      let end = 0
      let bytes = 0
      while (end < this.#buffer.length && end < this.batchSize) {
        const next = (this.#buffer[end] as Held).bytes
        // The first item always goes, so one larger than maxBatchBytes is sent alone rather than stuck forever.
        if (end > 0 && bytes + next > this.maxBatchBytes) break
        bytes += next
        end++
      }
      const batch = this.#buffer.slice(0, end)
      this.#buffer = this.#buffer.slice(end)
      this.#bufferBytes -= bytes
      this.#batches.add(batch)
      this.#sentItems += batch.length
      // A hook that throws (it must not) ends up in onError rather than as an unhandled rejection.
      this.#deliver(batch).catch((err: unknown) => { this.#report(err) })
    }
  }

  /** Sends one batch and settles each item with the queue; its slot frees only then, whatever happened. */
  async #deliver (batch: readonly Held[]): Promise<void> {
    try {
      const items = batch.map((held) => held.item)
      const results = await this.#results(items)
      const delivered: QueuedItem[] = []
      const failed: FailedItem[] = []
      items.forEach((item, i) => {
        const result = results[i] as BulkItemResult | Error
        if (result instanceof Error) failed.push({ item, error: describeError(result) })
        else if (result.status >= 200 && result.status < 300) delivered.push(item)
        else failed.push({ item, error: describeAnswer(result) })
      })
      // Dead letters first: the items stay in the queue until this goes through, and lost ones would cost more than duplicates.
      if (failed.length > 0) await this.#settle(() => this.#queue.deadLetter(failed))
      if (delivered.length > 0) await this.#settle(() => this.#queue.ack(delivered))
      const reasons = new Map<string, number>()
      for (const { error } of failed) reasons.set(error, (reasons.get(error) ?? 0) + 1)
      for (const [reason, count] of reasons) this.#onFailed?.(count, reason)
      if (delivered.length > 0) this.#onDelivered?.(delivered.length)
    } finally {
      this.#batches.delete(batch)
      this.#sentItems -= batch.length
      this.#wake?.()
    }
  }

  /** dispatch's answer, with a rejection or a result array of the wrong length turned into an Error per item. */
  async #results (items: readonly QueuedItem[]): Promise<ReadonlyArray<BulkItemResult | Error>> {
    let failure: Error
    try {
      const outcome = checkResults<BulkItemResult>(await this.#dispatch(items), items.length)
      if (outcome.ok) return outcome.results
      failure = outcome.reason as Error
    } catch (err) {
      failure = err instanceof Error ? err : new Error(`dispatch rejected with ${String(err)}`)
    }
    return items.map(() => failure)
  }

  /**
   * Runs an ack or dead-letter until the queue takes it, waiting between tries; past stop()'s deadline it gives up,
   * and the items stay in the queue (sent again later, or dead-lettered again).
   */
  async #settle (operation: () => Promise<void>): Promise<void> {
    for (let failures = 1; ; failures++) {
      try {
        await operation()
        return
      } catch (err) {
        this.#report(err)
      }
      const left = this.#deadline - this.#clock.now()
      if (left <= 0) return
      await new Promise<void>((resolve) => { this.#clock.setTimeout(resolve, Math.min(backoffMs(failures), left)) })
    }
  }

  /** Touches everything held, every third of claimAfterMs (never for a queue that hands nothing to another consumer). */
  async #keepAlive (): Promise<void> {
    const now = this.#clock.now()
    if (this.#held() === 0 || now - this.#lastTouchAt < this.#touchEveryMs) return
    this.#lastTouchAt = now
    const items = this.#buffer.map((held) => held.item)
    for (const batch of this.#batches) for (const held of batch) items.push(held.item)
    try {
      await this.#queue.touch(items)
    } catch (err) {
      // Not retried: the next touch is a third of claimAfterMs away, and a take fails and backs off meanwhile.
      this.#report(err)
    }
  }

  #held (): number {
    return this.#buffer.length + this.#sentItems
  }

  /** Whether a take may go now: a slot is free, the buffer is not full, no failure is being waited out, and not stopping (unless draining). */
  #wantsItems (): boolean {
    return this.#hasRoom() && this.#clock.now() >= this.#retryAt
  }

  #hasRoom (): boolean {
    return this.#batches.size < this.concurrency && this.#buffer.length < this.batchSize && this.#bufferBytes < this.maxBatchBytes &&
      (!this.#stopping || (!this.#queue.durable && !this.#drained))
  }

  /** Until the first of: the oldest buffered item is due, the next take (poll, or after a failure), the next touch. */
  #waitMs (): number {
    if (this.#notified && this.#wantsItems()) return 0
    // Stopping, and the last take drained the queue with nothing held: the loop's exit is due now, not at the deadline.
    if (this.#stopping && this.#held() === 0 && (this.#queue.durable || this.#drained)) return 0
    const now = this.#clock.now()
    const head = this.#buffer[0]
    let at = Number.POSITIVE_INFINITY
    if (head !== undefined && this.#batches.size < this.concurrency) at = head.takenAt + this.maxWaitMs
    if (this.#hasRoom()) {
      // After a failure, or while draining, take again as soon as the retry wait allows.
      const poll = this.#stopping || this.#failures > 0 ? now : head === undefined ? now + this.idlePollMs : at
      at = Math.min(at, Math.max(this.#retryAt, poll))
    }
    if (this.#held() > 0) at = Math.min(at, this.#lastTouchAt + this.#touchEveryMs)
    return at - now
  }

  /** Waits `ms` (Infinity: until woken), or less if notify(), a settled batch or stop() wakes it. */
  async #wait (ms: number): Promise<void> {
    if (ms <= 0) return
    await new Promise<void>((resolve) => {
      const timer = Number.isFinite(ms) ? this.#clock.setTimeout(() => { this.#wake?.() }, ms) : undefined
      this.#wake = () => {
        this.#wake = null
        if (timer !== undefined) this.#clock.clearTimeout(timer)
        resolve()
      }
    })
  }

  #report (err: unknown): void {
    // Queues reject with Errors (ioredis' and ours).
    this.#onError?.(err as Error)
  }
}

/** 50, 100, 200... ms after the 1st, 2nd, 3rd failure in a row, capped. */
function backoffMs (failures: number): number {
  return Math.min(ASYNC_QUEUE_RETRY_BASE_MS * 2 ** Math.min(failures - 1, 16), ASYNC_QUEUE_RETRY_MAX_MS)
}

/** The error a dead letter keeps: the gateway's code (BW_ERR_...) first, when it has one. */
function describeError (error: Error): string {
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' ? `${code}: ${error.message}` : error.message
}

/** A refused item's dead-letter error: its status and the start of its body. */
function describeAnswer (result: BulkItemResult): string {
  const text = result.body.toString('utf8')
  if (text === '') return `upstream answered ${result.status}`
  const shown = text.length > DEAD_LETTER_BODY_CHARS ? `${text.slice(0, DEAD_LETTER_BODY_CHARS)}...` : text
  return `upstream answered ${result.status}: ${shown}`
}

/** `value` checked as a duration; `zero` allows 0. */
function milliseconds (name: string, value: number, zero: boolean): number {
  if (!Number.isFinite(value) || value < 0 || (!zero && value === 0)) {
    throw new RangeError(`expected ${name} to be a ${zero ? 'non-negative' : 'positive'} number of milliseconds, got ${String(value)}`)
  }
  return value
}
