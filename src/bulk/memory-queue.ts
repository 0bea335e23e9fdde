// The in-process bulk queue: async mode without Redis. Not durable: items still queued when the process ends are lost.
import { gatewayError } from '../core/index.js'
import { checkCount, type BulkQueue, type BulkQueueStats, type DeadLetter, type FailedItem, type QueuedItem } from './queue.js'

/** Items a memory queue holds at most, pending and dead letters together: the coalescer's maxPending. */
export const DEFAULT_MEMORY_QUEUE_MAX_ITEMS = 100_000

export interface MemoryQueueOptions {
  /**
   * Items held at most, pending (taken ones included) and dead letters together; one more `append` rejects with
   * BW_ERR_BULK_QUEUE_FULL (503), so that an upstream down for long fills no more than this much of the heap.
   * @default 100000
   */
  readonly maxItems?: number
  /**
   * The wall clock, in ms since the epoch: ids and ages are read from it. Tests pass a fake one; the queue sets no timer.
   * @default Date.now
   */
  readonly now?: () => number
}

/**
 * One consumer in one process: a taken item is never handed out again (no other consumer could claim it), so
 * `claimAfterMs` is Infinity and `touch` does nothing. Ids look like Redis Stream entry ids (`<ms>-<seq>`, increasing
 * even when the clock steps back), so clients see one id format whichever queue a route runs on.
 */
export class MemoryQueue implements BulkQueue {
  readonly durable = false
  readonly claimAfterMs = Number.POSITIVE_INFINITY
  readonly maxItems: number
  readonly #now: () => number
  /** Appended and not taken, oldest first. */
  #ready: QueuedItem[] = []
  /** Taken and not settled, by entry id; a Map iterates in insertion order, so the first is the oldest taken. */
  readonly #taken = new Map<string, QueuedItem>()
  #dead: DeadLetter[] = []
  #lastMs = 0
  #seq = 0
  #closed = false

  constructor (options: MemoryQueueOptions = {}) {
    const maxItems = options.maxItems ?? DEFAULT_MEMORY_QUEUE_MAX_ITEMS
    if (!Number.isSafeInteger(maxItems) || maxItems < 1) {
      throw new RangeError(`expected options.maxItems to be a positive integer, got ${String(maxItems)}`)
    }
    this.maxItems = maxItems
    this.#now = options.now ?? Date.now
  }

  async append (body: Buffer): Promise<string> {
    if (this.#closed) throw gatewayError('BW_ERR_GATEWAY_SHUTTING_DOWN', 'the bulk queue is closed: the gateway is shutting down')
    if (this.#ready.length + this.#taken.size + this.#dead.length >= this.maxItems) {
      throw gatewayError('BW_ERR_BULK_QUEUE_FULL', `the in-memory bulk queue holds ${this.maxItems} items (maxItems), dead letters included`)
    }
    const entryId = this.#nextId()
    this.#ready.push({ id: entryId, entryId, body, enqueuedAtMs: this.#lastMs })
    return entryId
  }

  async take (count: number): Promise<QueuedItem[]> {
    checkCount('count', count)
    const items = this.#ready.splice(0, count)
    for (const item of items) this.#taken.set(item.entryId, item)
    return items
  }

  async touch (_items: readonly QueuedItem[]): Promise<void> {}

  async ack (items: readonly QueuedItem[]): Promise<void> {
    for (const item of items) this.#taken.delete(item.entryId)
  }

  /** Items not taken (or already settled) are left alone, as the stream queue leaves entries that are gone. */
  async deadLetter (failures: readonly FailedItem[]): Promise<void> {
    const failedAtMs = this.#now()
    for (const { item, error } of failures) {
      if (this.#taken.delete(item.entryId)) this.#dead.push({ id: item.id, body: item.body, error, failedAtMs })
    }
  }

  async redrive (): Promise<number> {
    const letters = this.#dead
    this.#dead = []
    for (const letter of letters) {
      const entryId = this.#nextId()
      this.#ready.push({ id: letter.id, entryId, body: letter.body, enqueuedAtMs: this.#lastMs })
    }
    return letters.length
  }

  async stats (): Promise<BulkQueueStats> {
    // Items are taken oldest first and redriven ones enter last, so the oldest is the first taken or the first ready.
    const firstTaken = this.#taken.values().next().value
    const oldest = Math.min(firstTaken?.enqueuedAtMs ?? Infinity, this.#ready[0]?.enqueuedAtMs ?? Infinity)
    return {
      pending: this.#ready.length + this.#taken.size,
      deadLetters: this.#dead.length,
      oldestAgeMs: oldest === Infinity ? 0 : Math.max(0, this.#now() - oldest)
    }
  }

  async deadLetters (limit: number): Promise<DeadLetter[]> {
    checkCount('limit', limit)
    return this.#dead.slice(0, limit)
  }

  async close (): Promise<void> {
    this.#closed = true
  }

  /** `<ms>-<seq>` as Redis makes them: the ms never goes back, and seq counts items within one ms. */
  #nextId (): string {
    const now = this.#now()
    if (now > this.#lastMs) {
      this.#lastMs = now
      this.#seq = 0
    } else {
      this.#seq++
    }
    return `${this.#lastMs}-${this.#seq}`
  }
}
