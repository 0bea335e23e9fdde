// The queue behind an async bulk route: items stored before the 202, taken in order, acknowledged or dead-lettered once sent.

/** One item taken from a queue for one delivery. */
export interface QueuedItem {
  /**
   * The item's id: what `append` resolved with (the 202's `id`), kept through a redrive, so an upstream can
   * de-duplicate an item delivered twice (at-least-once) by it.
   */
  readonly id: string
  /**
   * Where this copy of the item sits in the queue: `ack`, `deadLetter` and `touch` find it by this. The same as `id`
   * until the item is redriven, which appends it again under a new entry id.
   */
  readonly entryId: string
  readonly body: Buffer
  /** When the item entered the queue, in ms since the epoch on the queue's clock (Redis' own for a stream); a redrive resets it. */
  readonly enqueuedAtMs: number
}

/** An item that failed for good, with why (the upstream's status and body, or the error), for the dead-letter store. */
export interface FailedItem {
  readonly item: QueuedItem
  readonly error: string
}

/** One item in the dead-letter store. */
export interface DeadLetter {
  /** The item's id, as `QueuedItem.id`. */
  readonly id: string
  readonly body: Buffer
  /** Why it failed: the upstream's status and body, or the error. */
  readonly error: string
  /** When it was dead-lettered, in ms since the epoch on the caller's clock. */
  readonly failedAtMs: number
}

/** What GET /actuator/bulk shows of one route's queue. */
export interface BulkQueueStats {
  /** Items stored and not yet delivered or dead-lettered, those taken and in flight (on any instance) included. */
  readonly pending: number
  /** Items in the dead-letter store, waiting for a redrive. */
  readonly deadLetters: number
  /** How long the oldest pending item has been in the queue, in ms; 0 when nothing is pending. */
  readonly oldestAgeMs: number
}

/**
 * One route's queue of bulk items. Semantics every implementation keeps (test/helpers/queue-contract.ts checks them):
 * - `take` hands out items in the order they were appended, each once per consumer, and never blocks for long: the
 *   sender does the waiting. A taken item stays in the queue until `ack` or `deadLetter`; if its consumer goes away,
 *   a durable queue hands it out again (to the same consumer name after a restart at once, to another after
 *   `claimAfterMs`): delivery is at least once.
 * - `deadLetter` stores each item with its error before it leaves the queue, and `redrive` appends every dead letter
 *   again, in order, before it leaves the dead-letter store: a crash in between duplicates an item, never loses one.
 */
export interface BulkQueue {
  /** Whether an appended item survives this process (a Redis Stream) or not (memory). */
  readonly durable: boolean
  /**
   * Ms a taken, unsettled item may go without a `touch` before another consumer may take it over; Infinity when the
   * queue never hands an item to another consumer (memory).
   */
  readonly claimAfterMs: number
  /** Stores one item; resolves with its id once stored (for a stream: once Redis answered XADD). */
  append: (body: Buffer) => Promise<string>
  /** The next items for this consumer, at most `count` (a positive integer), oldest first; [] when there are none. */
  take: (count: number) => Promise<QueuedItem[]>
  /** Tells the queue this consumer still works on `items`, so that no other consumer claims them meanwhile. */
  touch: (items: readonly QueuedItem[]) => Promise<void>
  /** Removes delivered items for good. */
  ack: (items: readonly QueuedItem[]) => Promise<void>
  /** Moves failed items, each with its error, to the dead-letter store, in the order given. */
  deadLetter: (failures: readonly FailedItem[]) => Promise<void>
  /** The oldest `limit` dead letters (a positive integer), oldest first, for an operator to see why they failed. */
  deadLetters: (limit: number) => Promise<DeadLetter[]>
  /** Appends every dead letter to the queue again, oldest first, keeping its id; resolves with how many moved. */
  redrive: () => Promise<number>
  stats: () => Promise<BulkQueueStats>
  /**
   * Refuses every later `append` (BW_ERR_GATEWAY_SHUTTING_DOWN); items already taken can still be acknowledged and
   * dead-lettered, so batches in flight finish. A Redis connection is the caller's, and stays open.
   */
  close: () => Promise<void>
}

/** `take`'s and `deadLetters`' count, checked the same way by every queue. */
export function checkCount (name: string, count: number): void {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`expected ${name} to be a positive integer, got ${String(count)}`)
}
