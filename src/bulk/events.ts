// What the bulk routes publish: items taken in and settled, batches sent, and each attempt at a batch. Metrics subscribe.
import { Topic } from '../core/index.js'
import type { BulkAttemptOutcome } from './bulk-writer.js'

/** What became of single writes: taken in, delivered to the upstream, failed for good, or refused at the door. */
export type BulkItemOutcome = 'accepted' | 'delivered' | 'failed' | 'rejected'

/** `count` single writes on bulk route `route` reached `outcome`. */
export interface BulkItemsEvent {
  readonly route: string
  readonly outcome: BulkItemOutcome
  readonly count: number
}

/** One batch of route `route` settled, delivered or not: `size` items, sent and answered in `durationMs`. */
export interface BulkBatchEvent {
  readonly route: string
  readonly size: number
  readonly durationMs: number
}

/** One attempt at a batch of route `route` ended with `outcome` (a retried batch makes several). */
export interface BulkAttemptEvent {
  readonly route: string
  readonly outcome: BulkAttemptOutcome
}

/** The bulk routes' topics, one set per gateway. */
export class BulkEvents {
  /** `bulk.items`: bulk_items_total. */
  readonly items = new Topic<BulkItemsEvent>('bulk.items')
  /** `bulk.batch`: bulk_batch_size and bulk_flush_duration_seconds. */
  readonly batch = new Topic<BulkBatchEvent>('bulk.batch')
  /** `bulk.attempt`: bulk_batches_total. */
  readonly attempt = new Topic<BulkAttemptEvent>('bulk.attempt')
}
