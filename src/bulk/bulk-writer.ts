// The bulk writer: one batch -> one upstream request (retried on failure under one batch id) -> one result per item.
import { randomUUID } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { gatewayError, isGatewayError, type GatewayError } from '../core/index.js'

/** How a batch's items are put in one body. */
export type BulkFormat = 'json-array' | 'ndjson'

/** Bytes of an upstream answer to a batch read at most: 10 MiB, twice the default batch, for per-item results. */
export const DEFAULT_BULK_MAX_RESPONSE_BYTES = 10 * 1024 * 1024

/** The upstream request for one attempt at one batch: the shape of the proxy's `RouteForwarder.send`. */
export interface BulkSendRequest {
  readonly method: 'POST'
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer
  readonly maxBytes: number
}

/** The upstream's answer, read whole. */
export interface BulkSendResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[]>>
  readonly body: Buffer
}

/**
 * Sends one attempt. Resolves with any status the upstream answered; rejects with the gateway's errors (their `code`
 * decides: BW_ERR_UPSTREAM_TIMEOUT, _UNREACHABLE and _CIRCUIT_OPEN are retried, anything else is not).
 */
export type BulkSend = (request: BulkSendRequest) => Promise<BulkSendResponse>

/** One item's answer, for its client. */
export interface BulkItemResult {
  readonly status: number
  readonly body: Buffer
  readonly contentType: string
}

/**
 * How one attempt at a batch ended, for `bulk_batches_total{outcome}`: `success` the upstream answered 2xx; `retry`
 * it failed and another attempt follows; `failed` it failed for good, or answered a whole-batch error (4xx).
 */
export type BulkAttemptOutcome = 'success' | 'retry' | 'failed'

export interface BulkRetryOptions {
  /** Extra attempts after the first; 0 never retries. */
  readonly retries: number
  /** Milliseconds before retry `attempt` (0 before the first retry, up to `retries - 1`). */
  readonly delayMs: (attempt: number) => number
}

export interface BulkWriterOptions {
  /** The upstream's bulk endpoint, with any query: `POST <path>`. */
  readonly path: string
  /**
   * `json-array`: `[item,item,...]` as application/json; `ndjson`: one item per line, each ending in `\n`, as
   * application/x-ndjson.
   */
  readonly format: BulkFormat
  /** Sends one attempt through the route's breaker and timeout (the proxy's RouteForwarder.send). */
  readonly send: BulkSend
  /** Retries of a failed batch (5xx, timeout, connect error, open breaker), all under the same batch id. */
  readonly retry: BulkRetryOptions
  /**
   * Waits between attempts, in ms. Tests pass one that resolves at once.
   * @default setTimeout from node:timers/promises
   */
  readonly sleep?: (ms: number) => Promise<void>
  /**
   * A batch's id, sent as X-Bulk-Batch-Id on every attempt so upstreams can de-duplicate a retried batch.
   * @default crypto.randomUUID
   */
  readonly newBatchId?: () => string
  /**
   * Bytes of an upstream answer read at most; a longer one fails the batch (502) without a retry.
   * @default 10485760 (10 MiB)
   */
  readonly maxResponseBytes?: number
  /** Called once per attempt with how it ended (feeds `bulk_batches_total`). Must not throw. */
  readonly onAttempt?: (outcome: BulkAttemptOutcome, attempt: number, batchId: string) => void
}

const CONTENT_TYPES: Readonly<Record<BulkFormat, string>> = { 'json-array': 'application/json', ndjson: 'application/x-ndjson' }
const JSON_TYPE = 'application/json'
/** Failures that leave the batch unanswered, so another attempt may succeed (the retry rule). */
const RETRIED_CODES: ReadonlySet<string> = new Set(['BW_ERR_UPSTREAM_TIMEOUT', 'BW_ERR_UPSTREAM_UNREACHABLE', 'BW_ERR_UPSTREAM_CIRCUIT_OPEN'])
const COMMA = Buffer.from(',')
const NEWLINE = Buffer.from('\n')
const OPEN_BRACKET = Buffer.from('[')
const CLOSE_BRACKET = Buffer.from(']')

/**
 * Semantics (the BulkDispatch contract of the coalescer: one result per item, in order; an Error fails its item only):
 * - 2xx with a JSON array as long as the batch: item i gets element i as JSON, with the element's numeric `status`
 *   (100-599) when it has one, else the upstream's. A per-item error status is that item's answer: never retried.
 * - Any other 2xx: the upstream took the batch without per-item answers; item i gets 200 `{"batch":"<id>","index":i}`.
 * - Any other status below 500: the upstream refused the whole batch; every item gets that status and body, no retry.
 * - 5xx, timeout, connect error, open breaker: retried `retry.retries` times after `retry.delayMs`; then every item
 *   gets one GatewayError (502, or 504 after a timeout, 503 after an open breaker) for a problem+json answer.
 * - Any other rejection of `send` (a bad or oversized answer) fails every item with 502 at once: the upstream may
 *   have taken the batch, and a retry would write it again.
 */
export class BulkWriter {
  readonly path: string
  readonly format: BulkFormat
  readonly retries: number
  readonly maxResponseBytes: number
  readonly #send: BulkSend
  readonly #delayMs: (attempt: number) => number
  readonly #sleep: (ms: number) => Promise<void>
  readonly #newBatchId: () => string
  readonly #onAttempt: BulkWriterOptions['onAttempt']

  constructor (options: BulkWriterOptions) {
    if (typeof options.path !== 'string' || !options.path.startsWith('/')) {
      throw new TypeError(`expected options.path to be a path starting with /, got ${String(options.path)}`)
    }
    if (!Object.hasOwn(CONTENT_TYPES, options.format)) {
      throw new TypeError(`expected options.format to be json-array or ndjson, got ${String(options.format)}`)
    }
    if (typeof options.send !== 'function') throw new TypeError(`expected options.send to be a function, got ${typeof options.send}`)
    const retries = options.retry?.retries
    if (!Number.isSafeInteger(retries) || retries < 0) {
      throw new RangeError(`expected options.retry.retries to be a non-negative integer, got ${String(retries)}`)
    }
    if (typeof options.retry.delayMs !== 'function') {
      throw new TypeError(`expected options.retry.delayMs to be a function, got ${typeof options.retry.delayMs}`)
    }
    const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_BULK_MAX_RESPONSE_BYTES
    if (!Number.isSafeInteger(maxResponseBytes) || maxResponseBytes < 1) {
      throw new RangeError(`expected options.maxResponseBytes to be a positive integer of bytes, got ${String(maxResponseBytes)}`)
    }
    this.path = options.path
    this.format = options.format
    this.retries = retries
    this.maxResponseBytes = maxResponseBytes
    this.#send = options.send
    this.#delayMs = options.retry.delayMs
    this.#sleep = options.sleep ?? (async (ms) => { await delay(ms) })
    this.#newBatchId = options.newBatchId ?? randomUUID
    this.#onAttempt = options.onAttempt
  }

  /** The body for `items`, each one JSON text, in the writer's format. */
  encode (items: readonly Buffer[]): Buffer {
    const parts: Buffer[] = []
    if (this.format === 'ndjson') {
      for (const item of items) parts.push(item, NEWLINE)
    } else {
      parts.push(OPEN_BRACKET)
      items.forEach((item, i) => {
        if (i > 0) parts.push(COMMA)
        parts.push(item)
      })
      parts.push(CLOSE_BRACKET)
    }
    return Buffer.concat(parts)
  }

  /**
   * Sends one batch of JSON texts (validated by the HTTP layer), retrying failures, and resolves with one result
   * per item, in order. Never rejects: a failure is an Error in every item's slot. A coalescer's BulkDispatch.
   * @param headers more request headers for every attempt (lower-case names), like the items' ids
   */
  async dispatch (items: readonly Buffer[], headers: Readonly<Record<string, string>> = {}): Promise<ReadonlyArray<BulkItemResult | Error>> {
    const batchId = this.#newBatchId()
    const request: BulkSendRequest = {
      method: 'POST',
      path: this.path,
      headers: {
        ...headers,
        'content-type': CONTENT_TYPES[this.format],
        'x-bulk-batch-id': batchId,
        'x-bulk-size': String(items.length)
      },
      body: this.encode(items),
      maxBytes: this.maxResponseBytes
    }
    for (let attempt = 0; ; attempt++) {
      let failure: GatewayError
      try {
        const answer = await this.#send(request)
        if (answer.status < 500) {
          const ok = answer.status >= 200 && answer.status < 300
          this.#onAttempt?.(ok ? 'success' : 'failed', attempt, batchId)
          return ok ? perItem(answer, batchId, items.length) : items.map(() => wholeBatch(answer))
        }
        failure = gatewayError('BW_ERR_UPSTREAM_BAD_RESPONSE', `${this.path} answered ${answer.status}`)
      } catch (err) {
        failure = isGatewayError(err) ? err : gatewayError('BW_ERR_UPSTREAM_BAD_RESPONSE', `${this.path}: ${(err as Error).message}`, err)
        if (!RETRIED_CODES.has(failure.code)) return this.#fail(failure, attempt, batchId, items.length)
      }
      if (attempt >= this.retries) return this.#fail(failure, attempt, batchId, items.length)
      this.#onAttempt?.('retry', attempt, batchId)
      await this.#sleep(this.#delayMs(attempt))
    }
  }

  /** One error, shared by every item: the last attempt's code (so its status) with the batch's story in the detail. */
  #fail (last: GatewayError, attempt: number, batchId: string, size: number): Error[] {
    this.#onAttempt?.('failed', attempt, batchId)
    const attempts = attempt + 1
    const error = gatewayError(last.code, `bulk batch ${batchId} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${last.message}`, last)
    return new Array<Error>(size).fill(error)
  }
}

/** A 2xx: per-item answers when the body is a JSON array of the batch's length, else an acknowledgement per item. */
function perItem (answer: BulkSendResponse, batchId: string, size: number): BulkItemResult[] {
  const elements = jsonArray(answer.body)
  if (elements === null || elements.length !== size) {
    return Array.from({ length: size }, (_, index) => ({ status: 200, body: Buffer.from(JSON.stringify({ batch: batchId, index })), contentType: JSON_TYPE }))
  }
  return elements.map((element) => ({ status: itemStatus(element) ?? answer.status, body: Buffer.from(JSON.stringify(element)), contentType: JSON_TYPE }))
}

function jsonArray (body: Buffer): unknown[] | null {
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'))
    return Array.isArray(parsed) ? parsed : null
  } catch {
    return null
  }
}

/** An element's own `status`, when it is an HTTP status a client can be answered with (RFC 9110 section 15: 100-599). */
function itemStatus (element: unknown): number | undefined {
  if (typeof element !== 'object' || element === null) return undefined
  const status = (element as { status?: unknown }).status
  return Number.isInteger(status) && (status as number) >= 100 && (status as number) <= 599 ? status as number : undefined
}

function wholeBatch (answer: BulkSendResponse): BulkItemResult {
  const type = answer.headers['content-type']
  const contentType = (Array.isArray(type) ? type[0] : type) ?? 'application/octet-stream'
  return { status: answer.status, body: answer.body, contentType }
}
