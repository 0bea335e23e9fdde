// Bulk routes on the request path: single writes read and validated, gathered into batches, each client answered with its own item's result.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { BulkWriter, Coalescer, type BulkItemResult } from '../bulk/index.js'
import type { BulkRouteStatus } from '../actuator/index.js'
import type { BulkConfig, GatewayConfig, RouteConfig } from '../config/index.js'
import { isGatewayError, type ErrorCode } from '../core/index.js'
import type { BulkGauges, GatewayMetrics } from '../metrics/index.js'
import type { RouteForwarder } from '../proxy/index.js'
import { backoffMs } from '../resilience/index.js'

/** How the proxy handler answers a refused item: the gateway's problem+json, and Retry-After when one is known. */
export type BulkProblem = (request: FastifyRequest, reply: FastifyReply, code: ErrorCode, detail: string) => void

/** One route's write coalescing. */
export class BulkRoute {
  readonly route: RouteConfig
  readonly config: BulkConfig
  readonly #coalescer: Coalescer<Buffer, BulkItemResult>
  readonly #metrics: GatewayMetrics
  readonly #problem: BulkProblem

  constructor (route: RouteConfig, forwarder: RouteForwarder, metrics: GatewayMetrics, problem: BulkProblem) {
    const config = route.bulk as BulkConfig
    this.route = route
    this.config = config
    this.#metrics = metrics
    this.#problem = problem
    const writer = new BulkWriter({
      path: config.path,
      format: config.format,
      send: async (request) => await forwarder.send(request),
      retry: { retries: config.retry.retries, delayMs: (attempt) => backoffMs(config.retry, attempt) },
      onAttempt: (outcome) => { metrics.countBulkBatch(route.id, outcome) }
    })
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
    metrics.declareBulk(route.id)
  }

  /**
   * Takes one POST: its body is read (up to the route's bodyLimit) and checked, queued, and the client answered with
   * its item's result once its batch is answered. A refused item is never queued.
   */
  accept (request: FastifyRequest, reply: FastifyReply): void {
    const refusal = contentTypeRefusal(request.headers['content-type'], request.headers['content-encoding'])
    if (refusal !== null) {
      this.#refuse(request, reply, 'BW_ERR_BULK_UNSUPPORTED_MEDIA_TYPE', refusal)
      return
    }
    readBody(request, this.route.bodyLimitBytes).then((body) => {
      if (body === null) {
        this.#refuse(request, reply, 'BW_ERR_REQUEST_BODY_TOO_LARGE', `the body is larger than this route's bodyLimit (${this.route.bodyLimitBytes} bytes)`)
        return
      }
      const item = itemOf(body, this.config.format)
      if (typeof item === 'string') {
        this.#refuse(request, reply, 'BW_ERR_BULK_INVALID_ITEM', item)
        return
      }
      this.#queue(request, reply, item)
    }, (err: unknown) => {
      // The client went away mid-body: nothing was queued, and nobody is left to answer.
      request.log.info({ err, route: this.route.id }, 'bulk item not received whole; nothing queued')
      if (!reply.sent) this.#refuse(request, reply, 'BW_ERR_REQUEST_MALFORMED', 'the request body was not received whole')
    })
  }

  #queue (request: FastifyRequest, reply: FastifyReply, item: Buffer): void {
    const coalescer = this.#coalescer
    if (coalescer.closed) {
      this.#refuse(request, reply, 'BW_ERR_GATEWAY_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance')
      return
    }
    if (coalescer.full) {
      // A hint, not a promise: a batch's worth of items frees when the next one settles.
      const retryAfterSeconds = Math.max(1, Math.ceil(coalescer.retryAfterMs / 1000))
      reply.header('retry-after', String(retryAfterSeconds))
      this.#refuse(request, reply, 'BW_ERR_BULK_QUEUE_FULL', `${coalescer.maxPending} items of route ${this.route.id} are already waiting or in flight (maxPending); retry in ${retryAfterSeconds} s`)
      return
    }
    this.#metrics.countBulkItems(this.route.id, 'accepted', 1)
    coalescer.add(item, item.length).then((result) => {
      this.#metrics.countBulkItems(this.route.id, result.status >= 200 && result.status < 300 ? 'delivered' : 'failed', 1)
      reply.code(result.status).type(result.contentType).send(result.body)
    }, (err: unknown) => {
      this.#metrics.countBulkItems(this.route.id, 'failed', 1)
      if (isGatewayError(err)) {
        this.#problem(request, reply, err.code, err.message)
        return
      }
      request.log.error({ err, route: this.route.id }, 'bulk item failed in the gateway')
      this.#problem(request, reply, 'BW_ERR_GATEWAY_INTERNAL', 'the gateway failed to handle this request')
    })
  }

  #refuse (request: FastifyRequest, reply: FastifyReply, code: ErrorCode, detail: string): void {
    this.#metrics.countBulkItems(this.route.id, 'rejected', 1)
    this.#problem(request, reply, code, detail)
  }

  status (): BulkRouteStatus {
    const coalescer = this.#coalescer
    return {
      mode: this.config.mode,
      durable: false,
      pending: coalescer.pending,
      inFlight: coalescer.inFlight,
      deadLetters: 0,
      oldestItemAgeMs: Math.round(coalescer.oldestPendingAgeMs)
    }
  }

  /** Sync mode keeps no dead letters: a failed item is its client's answer. */
  async redrive (): Promise<number> {
    return 0
  }

  gauges (): BulkGauges {
    const coalescer = this.#coalescer
    return { route: this.route.id, pending: coalescer.pending + coalescer.inFlight, deadLetters: 0 }
  }

  /** Sends what waits now, without waiting for maxWait: shutdown begins. */
  flush (): void {
    // Settles with the batches it sent; close() is what shutdown awaits.
    this.#coalescer.flush().catch(() => {})
  }

  /** Refuses further items and resolves once every accepted one is answered. */
  async close (): Promise<void> {
    await this.#coalescer.close()
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
  /** Shutdown begins: every route sends what waits now and refuses further items. */
  flush: () => void
  close: () => Promise<void>
}

export function buildBulkRoutes (config: GatewayConfig, forwarders: ReadonlyMap<string, RouteForwarder>, metrics: GatewayMetrics, problem: BulkProblem): BulkRoutes {
  const byRoute = new Map(config.routes.filter((route) => route.bulk !== null).map((route) =>
    [route.id, new BulkRoute(route, forwarders.get(route.id) as RouteForwarder, metrics, problem)]))
  const routes = [...byRoute.values()]
  return {
    byRoute,
    gauges: async () => routes.map((route) => route.gauges()),
    status: async () => Object.fromEntries(routes.map((route) => [route.route.id, route.status()])),
    redrive: async (routeId) => await (byRoute.get(routeId) as BulkRoute).redrive(),
    flush: () => { for (const route of routes) route.flush() },
    close: async () => { await Promise.all(routes.map(async (route) => { await route.close() })) }
  }
}

/** RFC 6839 section 3.1: `+json` media types are JSON too. */
const JSON_MEDIA_TYPE = /^application\/(?:json|[a-z0-9!#$&^_.+-]+\+json)$/

/** Why a body with these headers cannot be an item (RFC 9110 sections 8.3 and 8.4), or null when it can. */
function contentTypeRefusal (contentType: string | undefined, contentEncoding: string | undefined): string | null {
  if (contentType === undefined) return 'send the item with Content-Type: application/json'
  const [mediaType = '', ...parameters] = contentType.split(';')
  if (!JSON_MEDIA_TYPE.test(mediaType.trim().toLowerCase())) return `expected Content-Type application/json, got ${contentType}`
  for (const parameter of parameters) {
    const [name = '', value = ''] = parameter.split('=')
    if (name.trim().toLowerCase() === 'charset' && !/^"?utf-8"?$/i.test(value.trim())) return `JSON is UTF-8 (RFC 8259 section 8.1), got ${contentType}`
  }
  if (contentEncoding !== undefined && contentEncoding.trim().toLowerCase() !== 'identity') {
    return `the gateway does not decode Content-Encoding ${contentEncoding}: send the item uncompressed`
  }
  return null
}

/** The body as one buffer, or null once it passes `limit` bytes (the rest is not read). */
async function readBody (request: FastifyRequest, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of request.raw) {
    bytes += (chunk as Buffer).length
    if (bytes > limit) return null
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, bytes)
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d])

/**
 * The item as sent upstream (the client's bytes, without surrounding whitespace), or why it is not one: one JSON
 * value (RFC 8259), and for ndjson one that fits on its line.
 */
function itemOf (body: Buffer, format: BulkConfig['format']): Buffer | string {
  let start = 0
  let end = body.length
  while (start < end && WHITESPACE.has(body[start] as number)) start++
  while (end > start && WHITESPACE.has(body[end - 1] as number)) end--
  if (start === end) return 'the body is empty: an item is one JSON value'
  const item = body.subarray(start, end)
  try {
    JSON.parse(item.toString('utf8'))
  } catch (err) {
    return `the body is not JSON: ${(err as Error).message}`
  }
  // Inside a JSON string a line break is always escaped, so a raw one is whitespace between tokens: ndjson forbids it.
  if (format === 'ndjson' && (item.includes(0x0a) || item.includes(0x0d))) return 'an ndjson item must be on one line: send it without line breaks'
  return item
}
