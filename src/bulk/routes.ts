// Bulk routes on the request path: single writes read and validated, then gathered into batches (sync) or queued (async).
import { performance } from 'node:perf_hooks'
import type { BulkConfig, RouteConfig } from '../config/index.js'
import { gatewayError, isGatewayError, readBody, retryAfterSeconds, type Downstream, type ErrorCode } from '../core/index.js'
import { AsyncSender, BULK_ITEM_IDS_HEADER, bulkItemIds } from './async-sender.js'
import { BulkWriter, type BulkItemResult, type BulkSend } from './bulk-writer.js'
import { Coalescer } from './coalescer.js'
import type { BulkEvents, BulkItemOutcome, BulkItemsEvent } from './events.js'
import { contentTypeRefusal, itemOf } from './items.js'
import type { BulkQueue, BulkQueueStats, QueuedItem } from './queue.js'

/** How often an async route re-reads its queue's length for maxPending, in ms: between reads, appends are counted here. */
const QUEUE_LENGTH_REFRESH_MS = 1000
/** A queue warning is logged at most this often, in ms, while Redis stays away. */
const QUEUE_WARNING_INTERVAL_MS = 30_000

/** What GET /actuator/bulk shows of one bulk route. */
export interface BulkRouteStatus {
  readonly mode: 'sync' | 'async'
  /** Whether an accepted item survives a crash of this process (async mode with Redis). */
  readonly durable: boolean
  /** Accepted, waiting for a batch. */
  readonly pending: number
  /** In batches sent and not answered yet. */
  readonly inFlight: number
  /** Items that failed for good in async mode, kept for a redrive. */
  readonly deadLetters: number
  /** How long the oldest waiting item has waited, in ms; 0 when none waits. */
  readonly oldestItemAgeMs: number
}

/** A bulk route's figures for the bulk gauges, read at every scrape. */
export interface BulkRouteGauges {
  readonly route: string
  /** Items accepted and not yet delivered or failed. */
  readonly pending: number
  readonly deadLetters: number
}

/** A bulk route's retry of a failed batch, as its config has it. */
export type BulkRetryConfig = BulkConfig['retry']

/** Where bulk routes log: the gateway's logger. */
export interface BulkLog {
  warn: (details: object, message: string) => void
  info: (details: object, message: string) => void
  error: (details: object, message: string) => void
}

export interface BulkRouteDeps {
  /** Sends one attempt at a batch through the route's breaker and timeout (the proxy's RouteForwarder.send). */
  readonly send: BulkSend
  /** Milliseconds before retry `attempt` of a failed batch, by the route's retry config. */
  readonly retryDelayMs: (retry: BulkRetryConfig, attempt: number) => number
  readonly events: BulkEvents
  readonly log: BulkLog
}

/** One route's write coalescing: what both modes share (reading, checking and counting items), and what each does with them. */
export abstract class BulkRoute {
  readonly route: RouteConfig
  readonly config: BulkConfig
  protected readonly events: BulkEvents
  protected readonly log: BulkLog
  protected readonly writer: BulkWriter
  /** One item's events, made once: a write publishes without allocating. */
  readonly #oneItem: Readonly<Record<BulkItemOutcome, BulkItemsEvent>>

  constructor (route: RouteConfig, deps: BulkRouteDeps) {
    const config = route.bulk as BulkConfig
    this.route = route
    this.config = config
    this.events = deps.events
    this.log = deps.log
    const { events, retryDelayMs } = deps
    this.writer = new BulkWriter({
      path: config.path,
      format: config.format,
      send: deps.send,
      retry: { retries: config.retry.retries, delayMs: (attempt) => retryDelayMs(config.retry, attempt) },
      onAttempt: (outcome) => { events.attempt.publish({ route: route.id, outcome }) }
    })
    const one = (outcome: BulkItemOutcome): BulkItemsEvent => Object.freeze({ route: route.id, outcome, count: 1 })
    this.#oneItem = { accepted: one('accepted'), delivered: one('delivered'), failed: one('failed'), rejected: one('rejected') }
  }

  /**
   * Takes one POST: its body is read (up to the route's bodyLimit) and checked, then handed to the mode. A refused
   * item is never queued. Answered on the raw request and response, like the cache's hits, never through Fastify: a
   * write is a few µs of work, and Fastify's request, reply, hooks and child logger cost more.
   */
  accept (client: Downstream): void {
    const { req } = client
    const refusal = contentTypeRefusal(req.headers['content-type'], req.headers['content-encoding'])
    if (refusal !== null) {
      this.refuse(client, 'BW_ERR_BULK_UNSUPPORTED_MEDIA_TYPE', refusal)
      return
    }
    readBody(req, this.route.bodyLimitBytes, (err, body) => {
      if (err !== null) {
        // The client went away mid-body: nothing was queued, and nobody is left to read the answer.
        this.log.info({ err, route: this.route.id, requestId: client.requestId }, 'bulk item not received whole; nothing queued')
        this.refuse(client, 'BW_ERR_REQUEST_MALFORMED', 'the request body was not received whole')
        return
      }
      if (body === null) {
        this.refuse(client, 'BW_ERR_REQUEST_BODY_TOO_LARGE', `the body is larger than this route's bodyLimit (${this.route.bodyLimitBytes} bytes)`)
        return
      }
      const item = itemOf(body, this.config.format)
      if (typeof item === 'string') {
        this.refuse(client, 'BW_ERR_BULK_INVALID_ITEM', item)
        return
      }
      this.take(client, item)
    })
  }

  /** A checked item: queue it and answer its client. */
  protected abstract take (client: Downstream, item: Buffer): void

  /** `count` items reached `outcome`. */
  protected counted (outcome: BulkItemOutcome, count = 1): void {
    this.events.items.publish(count === 1 ? this.#oneItem[outcome] : { route: this.route.id, outcome, count })
  }

  /** An item not taken: counted as rejected and answered with the problem. */
  protected refuse (client: Downstream, code: ErrorCode, detail: string, fields: readonly string[] = []): void {
    this.counted('rejected')
    client.problem(code, detail, fields)
  }

  /** A batch's result for one item, counted: 2xx delivered, anything else failed. */
  protected answer (client: Downstream, result: BulkItemResult): void {
    this.counted(result.status >= 200 && result.status < 300 ? 'delivered' : 'failed')
    client.send(result.status, result.contentType, result.body)
  }

  /** What /actuator/bulk shows. */
  abstract status (): Promise<BulkRouteStatus>
  /** The figures of the bulk gauges; never rejects. */
  abstract gauges (): Promise<BulkRouteGauges>
  /** Puts the dead letters back in the queue; how many went. */
  abstract redrive (): Promise<number>
  /** The gateway is ready: background work may begin. */
  abstract start (): void
  /** Shutdown begins: what waits goes now, without waiting for maxWait. */
  abstract flush (): void
  /** Refuses further items and settles what was accepted, within `timeoutMs`; false when a batch is still in flight then. */
  abstract close (timeoutMs: number): Promise<boolean>
}

/** Sync mode: each client waits for its own item's result, held in the coalescer until its batch is answered. */
export class SyncBulkRoute extends BulkRoute {
  readonly #coalescer: Coalescer<Buffer, BulkItemResult>

  constructor (route: RouteConfig, deps: BulkRouteDeps) {
    super(route, deps)
    const { config, events, writer } = this
    this.#coalescer = new Coalescer({
      dispatch: async (items) => await writer.dispatch(items),
      batchSize: config.batchSize,
      maxBatchBytes: config.maxBatchBytes,
      maxWaitMs: config.maxWaitMs,
      concurrency: config.concurrency,
      maxPending: config.maxPending,
      onBatchSettled: (size, durationMs) => { events.batch.publish({ route: route.id, size, durationMs }) }
    })
  }

  protected take (client: Downstream, item: Buffer): void {
    const coalescer = this.#coalescer
    if (coalescer.closed) {
      this.refuse(client, 'BW_ERR_GATEWAY_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance')
      return
    }
    if (coalescer.full) {
      // A hint, not a promise: a batch's worth of items frees when the next one settles.
      const retryAfter = retryAfterSeconds(coalescer.retryAfterMs)
      this.refuse(client, 'BW_ERR_BULK_QUEUE_FULL', `${coalescer.maxPending} items of route ${this.route.id} are already waiting or in flight (maxPending); retry in ${retryAfter} s`, ['retry-after', retryAfter])
      return
    }
    this.counted('accepted')
    coalescer.add(item, item.length).then((result) => { this.answer(client, result) }, (err: unknown) => {
      this.counted('failed')
      if (isGatewayError(err)) {
        client.problem(err.code, err.message)
        return
      }
      this.log.error({ err, route: this.route.id, requestId: client.requestId }, 'bulk item failed in the gateway')
      client.problem('BW_ERR_GATEWAY_INTERNAL', 'the gateway failed to handle this request')
    })
  }

  async status (): Promise<BulkRouteStatus> {
    const coalescer = this.#coalescer
    return {
      mode: 'sync',
      durable: false,
      pending: coalescer.pending,
      inFlight: coalescer.inFlight,
      deadLetters: 0,
      oldestItemAgeMs: Math.round(coalescer.oldestPendingAgeMs)
    }
  }

  async gauges (): Promise<BulkRouteGauges> {
    const coalescer = this.#coalescer
    return { route: this.route.id, pending: coalescer.pending + coalescer.inFlight, deadLetters: 0 }
  }

  /** Sync mode keeps no dead letters: a failed item is its client's answer. */
  async redrive (): Promise<number> {
    return 0
  }

  start (): void {}

  flush (): void {
    // Settles with the batches it sent; close() is what shutdown awaits.
    this.#coalescer.flush().catch(() => {})
  }

  /** Every accepted item's client is waiting: the coalescer is closed without a deadline (shutdownTimeout bounds the process). */
  async close (): Promise<boolean> {
    await this.#coalescer.close()
    return true
  }
}

/**
 * Async mode: 202 with the item's id once it is in the route's queue (a Redis Stream, or memory without Redis); a
 * sender takes batches from the queue, and acknowledges or dead-letters each item by its result.
 */
export class AsyncBulkRoute extends BulkRoute {
  readonly #queue: BulkQueue
  readonly #sender: AsyncSender
  #lastStats: BulkQueueStats = { pending: 0, deadLetters: 0, oldestAgeMs: 0 }
  #statsReadAt = Number.NEGATIVE_INFINITY
  #statsRead: Promise<BulkQueueStats> | null = null
  /** Appends on this instance since the last read of the queue's length. */
  #appendedSinceStats = 0

  constructor (route: RouteConfig, deps: BulkRouteDeps, queue: BulkQueue) {
    super(route, deps)
    const { config, events, writer } = this
    this.#queue = queue
    let lastWarning = Number.NEGATIVE_INFINITY
    this.#sender = new AsyncSender({
      queue,
      dispatch: async (items: readonly QueuedItem[]) => {
        const started = performance.now()
        try {
          return await writer.dispatch(items.map((item) => item.body), { [BULK_ITEM_IDS_HEADER]: bulkItemIds(items) })
        } finally {
          events.batch.publish({ route: route.id, size: items.length, durationMs: performance.now() - started })
        }
      },
      batchSize: config.batchSize,
      maxBatchBytes: config.maxBatchBytes,
      maxWaitMs: config.maxWaitMs,
      concurrency: config.concurrency,
      onDelivered: (count) => { this.counted('delivered', count) },
      onFailed: (count) => { this.counted('failed', count) },
      onError: (err) => {
        if (performance.now() - lastWarning < QUEUE_WARNING_INTERVAL_MS) return
        lastWarning = performance.now()
        deps.log.warn({ route: route.id, err }, `bulk queue of route ${route.id} failed; retrying (logged at most every ${QUEUE_WARNING_INTERVAL_MS / 1000} s)`)
      }
    })
  }

  protected take (client: Downstream, item: Buffer): void {
    if (this.#lastStats.pending + this.#appendedSinceStats >= this.config.maxPending) {
      this.refuse(client, 'BW_ERR_BULK_QUEUE_FULL', `${this.config.maxPending} items of route ${this.route.id} are already queued (maxPending); retry in 1 s`, ['retry-after', '1'])
      this.#refreshStats()
      return
    }
    this.#queue.append(item).then((id) => {
      this.#appendedSinceStats++
      this.counted('accepted')
      this.#sender.notify()
      client.send(202, 'application/json', Buffer.from(JSON.stringify({ id })))
    }, (err: unknown) => {
      // Nothing was stored, so the client must send it again: a 503 tells it when.
      const known = isGatewayError(err) ? err : gatewayError('BW_ERR_BULK_QUEUE_UNAVAILABLE', `route ${this.route.id}: the item was not queued: ${(err as Error).message}`, err)
      this.refuse(client, known.code, known.message, known.statusCode === 503 ? ['retry-after', '1'] : [])
    })
    this.#refreshStats()
  }

  /** Reads the queue's figures at most every QUEUE_LENGTH_REFRESH_MS; a failed read keeps the last ones. */
  async #stats (): Promise<BulkQueueStats> {
    if (this.#statsRead === null) {
      this.#statsReadAt = performance.now()
      this.#statsRead = this.#queue.stats().then((stats) => {
        this.#lastStats = stats
        this.#appendedSinceStats = 0
        return stats
      }, () => this.#lastStats).finally(() => { this.#statsRead = null })
    }
    return await this.#statsRead
  }

  #refreshStats (): void {
    if (performance.now() - this.#statsReadAt >= QUEUE_LENGTH_REFRESH_MS) this.#stats().catch(() => {})
  }

  async status (): Promise<BulkRouteStatus> {
    const stats = await this.#stats()
    const inFlight = this.#sender.inFlight
    return {
      mode: 'async',
      durable: this.#queue.durable,
      // The queue counts what this instance took too: pending is what waits for any instance to take it.
      pending: Math.max(0, stats.pending - inFlight),
      inFlight,
      deadLetters: stats.deadLetters,
      oldestItemAgeMs: stats.oldestAgeMs
    }
  }

  async gauges (): Promise<BulkRouteGauges> {
    const stats = await this.#stats()
    return { route: this.route.id, pending: stats.pending, deadLetters: stats.deadLetters }
  }

  async redrive (): Promise<number> {
    const moved = await this.#queue.redrive()
    this.#sender.notify()
    return moved
  }

  start (): void {
    this.#sender.start()
  }

  flush (): void {}

  /**
   * The sender sends what it holds at once and takes nothing more; what is not delivered by `timeoutMs` stays in a
   * durable queue for this instance's next start or another instance. A memory queue is drained, or lost with the process.
   */
  async close (timeoutMs: number): Promise<boolean> {
    await this.#queue.close()
    return await this.#sender.stop(timeoutMs)
  }
}
