// Bulk routes on the request path: single writes read and validated, then gathered into batches (sync) or queued (async).
import type { IncomingMessage, ServerResponse } from 'node:http'
import { hostname } from 'node:os'
import { performance } from 'node:perf_hooks'
import type { BulkRouteStatus } from '../actuator/index.js'
import {
  AsyncSender, BULK_ITEM_IDS_HEADER, bulkItemIds, BulkWriter, Coalescer, contentTypeRefusal, itemOf, MemoryQueue, StreamQueue,
  type BulkItemResult, type BulkQueue, type BulkQueueStats, type QueuedItem
} from '../bulk/index.js'
import { INSTANCE_ID_ENV, type BulkConfig, type GatewayConfig, type RedisConfig, type RouteConfig } from '../config/index.js'
import { closesConnection, gatewayError, isGatewayError, PROBLEM_CONTENT_TYPE_UTF8, problemFor, retryAfterSeconds, type ErrorCode } from '../core/index.js'
import type { BulkGauges, GatewayMetrics } from '../metrics/index.js'
import type { RouteForwarder } from '../proxy/index.js'
import { createRedisClient, readyWithin, type RedisConnection } from '../redis/index.js'
import { backoffMs } from '../resilience/index.js'

/**
 * One single write on the wire. Bulk writes are answered before Fastify, on the raw request and response, like the
 * cache's hits: a write is a few µs of work, and Fastify's request, reply, hooks and child logger cost more.
 */
export interface BulkWrite {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly requestId: string
  /** Records the answer once it is written: metrics and the access log, as the server records every answer. */
  readonly answered: (status: number, code: ErrorCode | null) => void
}

/** How often an async route re-reads its queue's length for maxPending, in ms: between reads, appends are counted here. */
const QUEUE_LENGTH_REFRESH_MS = 1000
/** Bytes an item's id takes in X-Bulk-Item-Ids: a stream entry id (`<ms>-<seq>`) and its comma. */
const ITEM_ID_HEADER_BYTES = 17
/** nginx's default limit of one request header line (large_client_header_buffers 4 8k): past it, a startup warning. */
const ITEM_IDS_HEADER_WARN_BYTES = 8 * 1024
/** A queue warning is logged at most this often, in ms, while Redis stays away. */
const QUEUE_WARNING_INTERVAL_MS = 30_000

interface BulkRouteDeps {
  readonly forwarder: RouteForwarder
  readonly metrics: GatewayMetrics
  readonly log: BulkLog
}

/** Where bulk routes log: the gateway's logger. */
export interface BulkLog {
  warn: (details: object, message: string) => void
  info: (details: object, message: string) => void
  error: (details: object, message: string) => void
}

/** One route's write coalescing: what both modes share (reading, checking and counting items), and what each does with them. */
export abstract class BulkRoute {
  readonly route: RouteConfig
  readonly config: BulkConfig
  protected readonly metrics: GatewayMetrics
  protected readonly log: BulkLog
  protected readonly writer: BulkWriter

  constructor (route: RouteConfig, deps: BulkRouteDeps) {
    const config = route.bulk as BulkConfig
    this.route = route
    this.config = config
    this.metrics = deps.metrics
    this.log = deps.log
    const forwarder = deps.forwarder
    this.writer = new BulkWriter({
      path: config.path,
      format: config.format,
      send: async (request) => await forwarder.send(request),
      retry: { retries: config.retry.retries, delayMs: (attempt) => backoffMs(config.retry, attempt) },
      onAttempt: (outcome) => { deps.metrics.countBulkBatch(route.id, outcome) }
    })
    deps.metrics.declareBulk(route.id)
  }

  /**
   * Takes one POST: its body is read (up to the route's bodyLimit) and checked, then handed to the mode. A refused
   * item is never queued.
   */
  accept (write: BulkWrite): void {
    const { req } = write
    const refusal = contentTypeRefusal(req.headers['content-type'], req.headers['content-encoding'])
    if (refusal !== null) {
      this.refuse(write, 'BW_ERR_BULK_UNSUPPORTED_MEDIA_TYPE', refusal)
      return
    }
    readBody(req, this.route.bodyLimitBytes, (err, body) => {
      if (err !== null) {
        // The client went away mid-body: nothing was queued, and nobody is left to read the answer.
        this.log.info({ err, route: this.route.id, requestId: write.requestId }, 'bulk item not received whole; nothing queued')
        this.refuse(write, 'BW_ERR_REQUEST_MALFORMED', 'the request body was not received whole')
        return
      }
      if (body === null) {
        this.refuse(write, 'BW_ERR_REQUEST_BODY_TOO_LARGE', `the body is larger than this route's bodyLimit (${this.route.bodyLimitBytes} bytes)`)
        return
      }
      const item = itemOf(body, this.config.format)
      if (typeof item === 'string') {
        this.refuse(write, 'BW_ERR_BULK_INVALID_ITEM', item)
        return
      }
      this.take(write, item)
    })
  }

  /** A checked item: queue it and answer its client. */
  protected abstract take (write: BulkWrite, item: Buffer): void

  /** An item not taken: counted as rejected and answered with the problem. */
  protected refuse (write: BulkWrite, code: ErrorCode, detail: string, headers: readonly string[] = []): void {
    this.metrics.countBulkItems(this.route.id, 'rejected', 1)
    this.problem(write, code, detail, headers)
  }

  /** problem+json, with the headers every answer of the gateway's own carries. */
  protected problem (write: BulkWrite, code: ErrorCode, detail: string, headers: readonly string[] = []): void {
    const problem = problemFor(code, detail, { route: this.route.id, requestId: write.requestId })
    const body = JSON.stringify(problem)
    const close = closesConnection(problem.status) ? ['connection', 'close'] : []
    this.write(write, problem.status, PROBLEM_CONTENT_TYPE_UTF8, Buffer.from(body), [...headers, ...close], code)
  }

  /** A batch's result for one item, counted: 2xx delivered, anything else failed. */
  protected answer (write: BulkWrite, result: BulkItemResult): void {
    this.metrics.countBulkItems(this.route.id, result.status >= 200 && result.status < 300 ? 'delivered' : 'failed', 1)
    this.write(write, result.status, result.contentType, result.body, [], null)
  }

  protected write (write: BulkWrite, status: number, contentType: string, body: Buffer, headers: readonly string[], code: ErrorCode | null): void {
    const { res } = write
    // A client that went away has nothing to read; its answer is still recorded.
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(status, ['x-request-id', write.requestId, 'content-type', contentType, 'content-length', String(body.length), ...headers])
      res.end(body)
    }
    write.answered(status, code)
  }

  /** What /actuator/bulk shows. */
  abstract status (): Promise<BulkRouteStatus>
  /** The figures of the bulk gauges; never rejects. */
  abstract gauges (): Promise<BulkGauges>
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
    const { config, metrics, writer } = this
    this.#coalescer = new Coalescer({
      dispatch: async (items) => await writer.dispatch(items),
      batchSize: config.batchSize,
      maxBatchBytes: config.maxBatchBytes,
      maxWaitMs: config.maxWaitMs,
      concurrency: config.concurrency,
      maxPending: config.maxPending,
      onBatch: (size) => { metrics.observeBulkBatchSize(route.id, size) },
      onBatchSettled: (_size, durationMs) => { metrics.observeBulkFlush(route.id, durationMs / 1000) }
    })
  }

  protected take (write: BulkWrite, item: Buffer): void {
    const coalescer = this.#coalescer
    if (coalescer.closed) {
      this.refuse(write, 'BW_ERR_GATEWAY_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance')
      return
    }
    if (coalescer.full) {
      // A hint, not a promise: a batch's worth of items frees when the next one settles.
      const retryAfter = retryAfterSeconds(coalescer.retryAfterMs)
      this.refuse(write, 'BW_ERR_BULK_QUEUE_FULL', `${coalescer.maxPending} items of route ${this.route.id} are already waiting or in flight (maxPending); retry in ${retryAfter} s`, ['retry-after', retryAfter])
      return
    }
    this.metrics.countBulkItems(this.route.id, 'accepted', 1)
    coalescer.add(item, item.length).then((result) => { this.answer(write, result) }, (err: unknown) => {
      this.metrics.countBulkItems(this.route.id, 'failed', 1)
      if (isGatewayError(err)) {
        this.problem(write, err.code, err.message)
        return
      }
      this.log.error({ err, route: this.route.id, requestId: write.requestId }, 'bulk item failed in the gateway')
      this.problem(write, 'BW_ERR_GATEWAY_INTERNAL', 'the gateway failed to handle this request')
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

  async gauges (): Promise<BulkGauges> {
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
    const { config, metrics, writer } = this
    this.#queue = queue
    let lastWarning = Number.NEGATIVE_INFINITY
    this.#sender = new AsyncSender({
      queue,
      dispatch: async (items: readonly QueuedItem[]) => {
        metrics.observeBulkBatchSize(route.id, items.length)
        const started = performance.now()
        try {
          return await writer.dispatch(items.map((item) => item.body), { [BULK_ITEM_IDS_HEADER]: bulkItemIds(items) })
        } finally {
          metrics.observeBulkFlush(route.id, (performance.now() - started) / 1000)
        }
      },
      batchSize: config.batchSize,
      maxBatchBytes: config.maxBatchBytes,
      maxWaitMs: config.maxWaitMs,
      concurrency: config.concurrency,
      onDelivered: (count) => { metrics.countBulkItems(route.id, 'delivered', count) },
      onFailed: (count) => { metrics.countBulkItems(route.id, 'failed', count) },
      onError: (err) => {
        if (performance.now() - lastWarning < QUEUE_WARNING_INTERVAL_MS) return
        lastWarning = performance.now()
        deps.log.warn({ route: route.id, err }, `bulk queue of route ${route.id} failed; retrying (logged at most every ${QUEUE_WARNING_INTERVAL_MS / 1000} s)`)
      }
    })
  }

  protected take (write: BulkWrite, item: Buffer): void {
    if (this.#lastStats.pending + this.#appendedSinceStats >= this.config.maxPending) {
      this.refuse(write, 'BW_ERR_BULK_QUEUE_FULL', `${this.config.maxPending} items of route ${this.route.id} are already queued (maxPending); retry in 1 s`, ['retry-after', '1'])
      this.#refreshStats()
      return
    }
    this.#queue.append(item).then((id) => {
      this.#appendedSinceStats++
      this.metrics.countBulkItems(this.route.id, 'accepted', 1)
      this.#sender.notify()
      this.write(write, 202, 'application/json', Buffer.from(JSON.stringify({ id })), [], null)
    }, (err: unknown) => {
      // Nothing was stored, so the client must send it again: a 503 tells it when.
      const known = isGatewayError(err) ? err : gatewayError('BW_ERR_BULK_QUEUE_UNAVAILABLE', `route ${this.route.id}: the item was not queued: ${(err as Error).message}`, err)
      this.refuse(write, known.code, known.message, known.statusCode === 503 ? ['retry-after', '1'] : [])
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

  async gauges (): Promise<BulkGauges> {
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

/** The bulk routes of a config, by route id, and what the actuator and metrics read of them. */
export interface BulkRoutes {
  readonly byRoute: ReadonlyMap<string, BulkRoute>
  /** Every route's figures, for the bulk gauges. */
  gauges: () => Promise<readonly BulkGauges[]>
  status: () => Promise<Record<string, BulkRouteStatus>>
  /** Puts a route's dead letters back in its queue; how many went. */
  redrive: (routeId: string) => Promise<number>
  /** Resolves once the bulk Redis connection is ready, or after its connectTimeout. */
  connected: () => Promise<void>
  /** The gateway is ready: async routes start sending. */
  start: () => void
  /** Shutdown begins: every route sends what waits now. */
  flush: () => void
  /**
   * Refuses further items, settles what was accepted within `timeoutMs`, and closes the bulk Redis connection.
   * Resolves with the ids of the routes whose batches were still in flight at the deadline.
   */
  close: (timeoutMs: number) => Promise<ReadonlySet<string>>
}

export interface BulkRoutesOptions {
  readonly forwarders: ReadonlyMap<string, RouteForwarder>
  readonly metrics: GatewayMetrics
  readonly log: BulkLog
  /** This instance's name in the async routes' consumer groups. */
  readonly instanceId: string
}

export function buildBulkRoutes (config: GatewayConfig, options: BulkRoutesOptions): BulkRoutes {
  const { forwarders, metrics, log, instanceId } = options
  const bulkRoutes = config.routes.filter((route) => route.bulk !== null)
  const redis = config.redis
  let connection: RedisConnection | null = null
  const queueFor = (route: RouteConfig): BulkQueue => {
    const { batchSize } = route.bulk as BulkConfig
    if (batchSize * ITEM_ID_HEADER_BYTES > ITEM_IDS_HEADER_WARN_BYTES) {
      log.warn({ route: route.id, batchSize }, `bulk route ${route.id}: X-Bulk-Item-Ids of a full batch takes about ${Math.ceil(batchSize * ITEM_ID_HEADER_BYTES / 1024)} KB; the upstream must accept header fields that large (nginx: large_client_header_buffers; Node: --max-http-header-size), or lower batchSize`)
    }
    if (redis === null) {
      log.warn({ route: route.id }, `bulk route ${route.id} runs async in memory: without redis:, an accepted item is lost if this process dies`)
      return new MemoryQueue({ maxItems: (route.bulk as BulkConfig).maxPending })
    }
    connection ??= createRedisClient({ ...redis, onError: () => {} })
    return new StreamQueue(connection, {
      route: route.id,
      consumer: instanceId,
      commandTimeoutMs: (redis as RedisConfig).commandTimeoutMs,
      claimAfterMs: (route.bulk as BulkConfig).claimAfterMs
    })
  }
  const byRoute = new Map<string, BulkRoute>(bulkRoutes.map((route) => {
    const deps = { forwarder: forwarders.get(route.id) as RouteForwarder, metrics, log }
    return [route.id, (route.bulk as BulkConfig).mode === 'sync' ? new SyncBulkRoute(route, deps) : new AsyncBulkRoute(route, deps, queueFor(route))]
  }))
  const routes = [...byRoute.values()]
  return {
    byRoute,
    gauges: async () => await Promise.all(routes.map(async (route) => await route.gauges())),
    status: async () => Object.fromEntries(await Promise.all(routes.map(async (route) => [route.route.id, await route.status()] as const))),
    redrive: async (routeId) => await (byRoute.get(routeId) as BulkRoute).redrive(),
    connected: async () => {
      if (connection !== null) await readyWithin(connection, (redis as RedisConfig).connectTimeoutMs)
    },
    start: () => { for (const route of routes) route.start() },
    flush: () => { for (const route of routes) route.flush() },
    close: async (timeoutMs) => {
      const settled = await Promise.all(routes.map(async (route) => await route.close(timeoutMs)))
      await (connection as RedisConnection | null)?.close()
      return new Set(routes.filter((_route, i) => !settled[i]).map((route) => route.route.id))
    }
  }
}

/** This instance's consumer name: BREAKWATER_INSTANCE_ID when set (a pod name survives restarts), else the host name. */
export function instanceIdFrom (env: NodeJS.ProcessEnv): string {
  const id = env[INSTANCE_ID_ENV]
  return id !== undefined && id !== '' ? id : hostname()
}

/** The body as one buffer, or null once it passes `limit` bytes (the rest is not read). */
function readBody (req: IncomingMessage, limit: number, done: (err: Error | null, body: Buffer | null) => void): void {
  const chunks: Buffer[] = []
  let bytes = 0
  // Listeners, not an async iterator: measured, the iterator's promises and ticks cost more than the rest of a write.
  const finish = (err: Error | null, body: Buffer | null): void => {
    req.off('data', onData)
    req.off('end', onEnd)
    req.off('error', onError)
    req.off('close', onClose)
    done(err, body)
  }
  const onData = (chunk: Buffer): void => {
    bytes += chunk.length
    if (bytes > limit) finish(null, null)
    else chunks.push(chunk)
  }
  const onEnd = (): void => { finish(null, chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, bytes)) }
  const onError = (err: Error): void => { finish(err, null) }
  const onClose = (): void => { if (!req.complete) finish(new Error('the client closed the connection mid-body'), null) }
  req.on('data', onData)
  req.on('end', onEnd)
  req.on('error', onError)
  req.on('close', onClose)
}
