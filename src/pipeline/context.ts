// One proxied request's context, made once at the front door: what was asked, which route took it, and the one
// writer of the gateway's answers to it. It is the request's record too, published once its response closes.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { RouteConfig } from '../config/index.js'
import {
  closesConnection, ERROR_TABLE, PROBLEM_CONTENT_TYPE_UTF8, problemJson,
  type CacheStatus, type Downstream, type ErrorCode, type GatewayError, type ResponseFields, type Topic
} from '../core/index.js'
import { NOT_FOUND_URI } from '../metrics/index.js'
import { CLIENT_CLOSED_STATUS, type RequestRecord } from './record.js'
import { requestIdFor } from './request-id.js'
import type { InFlight } from './route-runtime.js'

const NO_FIELDS: readonly string[] = []

export class RequestContext implements Downstream, RequestRecord {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly requestId: string
  readonly method: string
  readonly url: string
  routeId: string | null = null
  uri = NOT_FOUND_URI
  upstreamPath = ''
  cacheStatus: CacheStatus | null = null
  code: ErrorCode | null = null
  error: GatewayError | null = null
  status = 0
  durationMs = 0
  readonly #startedAt = performance.now()
  readonly #requestEnd: Topic<RequestRecord>
  /** The runtime's requests under way, this one among them until its response closes. */
  #inFlight: InFlight | null = null

  constructor (req: IncomingMessage, res: ServerResponse, requestEnd: Topic<RequestRecord>) {
    this.req = req
    this.res = res
    this.requestId = requestIdFor(req)
    this.method = req.method as string
    this.url = req.url as string
    this.#requestEnd = requestEnd
    // 'close' comes once whatever happens: after the last byte, or when the client leaves first.
    res.on('close', this.#closed)
  }

  /** The match stage's result: the route (for a 405, the one whose path matched) and what the upstream is asked for. */
  matched (route: RouteConfig, upstreamPath: string): void {
    this.routeId = route.id
    this.uri = route.prefix
    this.upstreamPath = upstreamPath
  }

  /** The request runs on a route's runtime: counted among its requests until the response closes. */
  runsOn (requests: InFlight): void {
    requests.enter()
    this.#inFlight = requests
  }

  writeHead (status: number, fields: ResponseFields): void {
    // The one place X-Request-Id and X-Cache are set on a proxied request's answer.
    if (Array.isArray(fields)) {
      fields.push('x-request-id', this.requestId)
      if (this.cacheStatus !== null) fields.push('x-cache', this.cacheStatus)
    } else {
      fields['x-request-id'] = this.requestId
      if (this.cacheStatus !== null) fields['x-cache'] = this.cacheStatus
    }
    this.res.writeHead(status, fields)
  }

  send (status: number, contentType: string, body: Buffer | string, fields: readonly string[] = NO_FIELDS): void {
    const res = this.res
    // A client that went away has nothing to read; its request was recorded when it left.
    if (res.headersSent || res.destroyed) return
    const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length
    this.writeHead(status, ['content-type', contentType, 'content-length', String(length), ...fields])
    res.end(body)
  }

  problem (code: ErrorCode, detail: string, fields: readonly string[] = NO_FIELDS): void {
    this.code = code
    const status = ERROR_TABLE[code].status
    const body = problemJson(code, detail, { route: this.routeId ?? undefined, requestId: this.requestId })
    this.send(status, PROBLEM_CONTENT_TYPE_UTF8, body, closesConnection(status) ? [...fields, 'connection', 'close'] : fields)
  }

  readonly #closed = (): void => {
    const res = this.res
    this.status = res.headersSent ? res.statusCode : CLIENT_CLOSED_STATUS
    this.durationMs = performance.now() - this.#startedAt
    this.#inFlight?.leave()
    this.#requestEnd.publish(this)
  }
}
