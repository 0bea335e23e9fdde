// Forwarding for one route: its upstream pools (round robin, keep-alive), streamed bodies both ways, WebSocket tunnels.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { Readable, type Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Pool, type Dispatcher } from 'undici'
import type { RouteConfig } from '../config/index.js'
import { ERROR_TABLE, gatewayError, PROBLEM_CONTENT_TYPE_UTF8, problemFor, retryAfterSeconds, type ErrorCode } from '../core/index.js'
import { clientResponseHeaders, upstreamRequestHeaders, type OutgoingHeaders } from './headers.js'
import { failureOf, outcomeOf, type CallGuard, type GuardRefusal, type RetryPolicy } from './call-guard.js'
import { Exchange, type CapturedResponse, type ExchangeResult } from './exchange.js'
import { translateUpstreamError, upstreamError } from './upstream-errors.js'

interface Target {
  readonly origin: string
  /** host[:port], the Host upstream. */
  readonly host: string
  readonly pool: Pool
}

/** One client request on its way through attempts. */
interface Call {
  readonly request: FastifyRequest
  readonly reply: FastifyReply
  readonly upstreamPath: string
  readonly body: Dispatcher.DispatchOptions['body']
  /** 0 for the first attempt. */
  readonly attempt: number
  /** Extra attempts this request may make: 0 unless its method is idempotent and its body was not streamed. */
  readonly retries: number
  readonly options: ForwardOptions
}

/** How a forward ended, as the caller of `forward` hears it. */
export type ForwardEnd =
  /** The upstream's answer was relayed in full, its fields as received; `captured` when it fitted `captureUpToBytes`. */
  | { readonly kind: 'relayed', readonly status: number, readonly headers: IncomingHttpHeaders, readonly captured: CapturedResponse | null }
  /** The answer `holdBack` held: nothing was sent, the caller must answer the client. */
  | { readonly kind: 'held', readonly status: number, readonly headers: OutgoingHeaders }
  /** No usable answer (after any retries): unless `answered` (the relayed answer was cut), the caller may answer instead of the error. */
  | { readonly kind: 'failed', readonly error: Error, readonly answered: boolean }
  /** The client left first. */
  | { readonly kind: 'abandoned' }
  /** The breaker refused the call: the caller may answer instead of the refusal. */
  | { readonly kind: 'refused', readonly retryAfterMs: number }

/** What a caller (the cache) asks of one forward. */
export interface ForwardOptions {
  /** Request headers set upstream for this request, over the client's (a revalidation's validators); null removes one. */
  readonly headers?: Readonly<Record<string, string | null>>
  /** Hand back a copy of the relayed answer when its body is at most this many bytes. */
  readonly captureUpToBytes?: number
  /** Asked about the final answer's status, once no retry is left for it: true holds it back from the client. */
  readonly holdBack?: (status: number) => boolean
  /** Hears how the forward ended, exactly once; true: the caller has answered the client. */
  readonly onEnd?: (end: ForwardEnd) => boolean
}

const NO_OPTIONS: ForwardOptions = {}

/** Answers the request with the gateway's problem `code`. */
export type ProblemAnswer = (reply: FastifyReply, code: ErrorCode, detail: string) => void

/** How `refuseEarly` answered: the status, and the problem's code (null for the route's fallback). */
export interface EarlyRefusal {
  readonly requestId: string
  readonly status: number
  readonly code: ErrorCode | null
}

const CIRCUIT_OPEN: ErrorCode = 'BW_ERR_UPSTREAM_CIRCUIT_OPEN'
const OPEN_STATUS = ERROR_TABLE[CIRCUIT_OPEN].status

/** A request of the gateway's own, for `send`: not a client's, so no client headers are forwarded. */
export interface OwnRequest {
  readonly method: 'POST'
  /** The upstream path, with any query. */
  readonly path: string
  /** Set upstream over the route's `headers`; names in any case. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer
  /** Bytes of the answer's body read at most; a longer one rejects. */
  readonly maxBytes: number
}

/** What fetch and send differ in, for #capture. */
interface CaptureCall {
  readonly method: 'GET' | 'POST'
  readonly path: string
  readonly body: Buffer | null
  readonly headersFor: (target: Target) => OutgoingHeaders
  readonly maxBytes: number
  /** What an answer over maxBytes rejects with, once the breaker has counted its status. */
  readonly tooLarge: (origin: string, status: number) => Error
}

/** What a refused Upgrade answers with; the caller writes it to the raw socket. */
export type UpgradeRefusal = (err: Error) => void

export class RouteForwarder {
  readonly route: RouteConfig
  readonly #targets: readonly Target[]
  readonly #trustProxy: boolean
  /** The route's timeout and the send timeout, as every exchange of the route takes them: made once, not per request. */
  readonly #timeouts: { readonly timeoutMs: number, readonly sendTimeoutMs: number }
  readonly #tunnels = new Set<Duplex>()
  readonly #guard: CallGuard | null
  readonly #retry: RetryPolicy | null
  readonly #fallbackBody: Buffer
  readonly #openProblemBody: (retryAfter: string, requestId: string) => string
  readonly #answerProblem: ProblemAnswer
  #next = 0

  /**
   * `guard`: the route's circuit breaker, without which every call goes through uncounted;
   * `retry`: the route's retry policy, without which nothing is retried;
   * `answerProblem`: how a refusal is answered; by default the error goes through Fastify's error handler;
   * `sendTimeoutMs`: how long a client may take in nothing of an answer (`server.sendTimeout`).
   */
  constructor (route: RouteConfig, options: { trustProxy: boolean, sendTimeoutMs: number, guard?: CallGuard, retry?: RetryPolicy, answerProblem?: ProblemAnswer }) {
    this.route = route
    this.#trustProxy = options.trustProxy
    this.#timeouts = { timeoutMs: route.timeoutMs, sendTimeoutMs: options.sendTimeoutMs }
    this.#guard = options.guard ?? null
    this.#retry = options.retry ?? null
    this.#fallbackBody = Buffer.from(route.breaker.fallback?.body ?? '')
    this.#openProblemBody = openProblemBody(route.id, (retryAfter) => this.#openDetail(retryAfter))
    this.#answerProblem = options.answerProblem ?? ((reply, code, detail) => { reply.send(gatewayError(code, detail)) })
    this.#targets = route.upstreams.map((origin) => ({
      origin,
      host: new URL(origin).host,
      // One pool per upstream and route, so the route's timeout bounds the connect too.
      pool: new Pool(origin, { connect: { timeout: route.timeoutMs } })
    }))
  }

  /** Forwards the request to the next upstream and streams the answer back; failures become 502/504 problems. */
  forward (request: FastifyRequest, reply: FastifyReply, upstreamPath: string, options: ForwardOptions = NO_OPTIONS): void {
    const raw = request.raw
    const route = this.route
    const length = raw.headers['content-length']
    if (length !== undefined && Number(length) > route.bodyLimitBytes) {
      reply.send(tooLarge(route))
      return
    }
    let body: Dispatcher.DispatchOptions['body'] = null
    if (length !== undefined) {
      if (length !== '0') body = raw
    } else if (raw.headers['transfer-encoding'] !== undefined) {
      body = Readable.from(limitBody(raw, route))
    }

    const retry = this.#retry
    const retries = body === null && retry !== null && retry.appliesTo(raw.method as string) ? retry.retries : 0
    this.#attempt({ request, reply, upstreamPath, body, attempt: 0, retries, options })
  }

  /** One attempt through the breaker; a retryable failure schedules the next, the last one answers the client. */
  #attempt (call: Call): void {
    const { request, reply, body } = call
    const route = this.route
    const guard = this.#guard
    const permit = guard?.tryAcquire() ?? null
    if (permit !== null && !permit.permitted) {
      // Never retried once open: the refusal is the answer.
      this.#retry?.onOutcome?.(false, call.attempt > 0)
      if (call.options.onEnd?.({ kind: 'refused', retryAfterMs: permit.retryAfterMs }) !== true) this.#refuse(reply, permit.retryAfterMs)
      return
    }
    const target = this.#pick()
    const exchange = new Exchange(reply, route.id, target.origin, this.#timeouts, {
      holdBack: this.#holdBack(call),
      captureUpToBytes: call.options.captureUpToBytes,
      onDone: (result) => {
        if (guard !== null && permit !== null) {
          const { outcome, message } = outcomeOf(result, route)
          guard.onResult(permit, outcome, result.durationMs, message)
        }
        this.#afterAttempt(call, result)
      }
    })
    target.pool.dispatch({
      path: call.upstreamPath,
      method: request.raw.method as Dispatcher.HttpMethod,
      headers: this.#headersFor(request.raw, request.id, target, call.options.headers),
      body,
      // The exchange's own timer bounds a bodiless request from dispatch on. undici's timers are kept only as the
      // backstop while an upload streams: each request makes a new one (the connection's keep-alive timer, of
      // another kind, sits between two requests), and a cleared one lingers in undici's list for up to a second,
      // long enough to be promoted to the old space.
      headersTimeout: body === null ? 0 : route.timeoutMs,
      bodyTimeout: body === null ? 0 : route.timeoutMs
    }, exchange)
    if (body === null || request.raw.readableEnded) exchange.armTimeout()
    else request.raw.once('end', () => { exchange.armTimeout() })
  }

  /** Holds an answer back for a retry while attempts are left, otherwise as the caller asks. */
  #holdBack (call: Call): ((status: number) => boolean) | undefined {
    const retry = this.#retry
    const forRetry = retry !== null && call.attempt < call.retries
    const forCaller = call.options.holdBack
    if (!forRetry) return forCaller
    return (status) => retry.retryable({ status }) || forCaller?.(status) === true
  }

  #afterAttempt (call: Call, result: ExchangeResult): void {
    const retry = this.#retry
    const retried = call.attempt > 0
    const onEnd = call.options.onEnd
    switch (result.kind) {
      case 'abandoned':
        onEnd?.({ kind: 'abandoned' })
        return
      case 'response':
        // For the retry counts, a relayed 5xx is a failed call; anything else the upstream answered succeeded.
        retry?.onOutcome?.(result.status < 500, retried)
        onEnd?.({ kind: 'relayed', status: result.status, headers: result.headers, captured: result.captured })
        return
      case 'held':
        if (retry !== null && call.attempt < call.retries && retry.retryable({ status: result.status })) {
          this.#retryLater(call, retry.delayMs(call.attempt, result.retryAfter))
          return
        }
        // Held for the caller, who answers the client.
        retry?.onOutcome?.(result.status < 500, retried)
        onEnd?.({ kind: 'held', status: result.status, headers: result.headers })
        return
      case 'failed':
        if (!result.answered && retry !== null && call.attempt < call.retries && retry.retryable(failureOf(result.error.code))) {
          this.#retryLater(call, retry.delayMs(call.attempt, undefined))
          return
        }
        retry?.onOutcome?.(false, retried)
        if (onEnd?.({ kind: 'failed', error: result.error, answered: result.answered }) !== true && !result.answered) call.reply.send(result.error)
    }
  }

  #retryLater (call: Call, delayMs: number): void {
    const res = call.reply.raw
    // A client that leaves during the wait gets nothing more, and the upstream no further attempt.
    const onClose = (): void => {
      clearTimeout(timer)
      call.options.onEnd?.({ kind: 'abandoned' })
    }
    const timer = setTimeout(() => {
      res.removeListener('close', onClose)
      this.#attempt({ ...call, attempt: call.attempt + 1 })
    }, delayMs)
    res.once('close', onClose)
  }

  /**
   * A request of the gateway's own on behalf of `req` (a background refresh), through the breaker and round robin,
   * its answer read whole. Rejects when the breaker refuses, the upstream fails or times out, or the body exceeds
   * `maxBytes`; a status is an answer, whatever it is (the breaker counts it as any other).
   */
  async fetch (req: IncomingMessage, requestId: string, upstreamPath: string, headers: Readonly<Record<string, string | null>>, maxBytes: number): Promise<CapturedResponse> {
    return await this.#capture({
      method: 'GET',
      path: upstreamPath,
      body: null,
      headersFor: (target) => this.#headersFor(req, requestId, target, headers),
      maxBytes,
      tooLarge: () => new Error(`the answer exceeds ${maxBytes} bytes`)
    })
  }

  /**
   * A request of the gateway's own with a body and no client behind it (a bulk batch), through the breaker and round
   * robin, bounded by the route's timeout, its answer read whole. Sent with `request.headers` over the route's
   * `headers`, and the upstream's Host. Rejects with the gateway's errors: BW_ERR_UPSTREAM_CIRCUIT_OPEN (503, the
   * detail says when to retry) when the breaker refuses, BW_ERR_UPSTREAM_TIMEOUT (504) or _UNREACHABLE (502) when the
   * upstream fails, BW_ERR_UPSTREAM_BAD_RESPONSE (502) for an answer over `request.maxBytes`. Any status is an answer;
   * the breaker counts the route's `failureStatuses` as failures, as for any other call.
   */
  async send (request: OwnRequest): Promise<CapturedResponse> {
    return await this.#capture({
      method: request.method,
      path: request.path,
      body: request.body,
      headersFor: (target) => {
        const headers: OutgoingHeaders = { ...this.route.headers }
        for (const name in request.headers) headers[name.toLowerCase()] = request.headers[name] as string
        headers.host = target.host
        return headers
      },
      maxBytes: request.maxBytes,
      // The status is known but its body is not: the caller cannot tell which items the upstream took.
      tooLarge: (origin, status) => upstreamError('BW_ERR_UPSTREAM_BAD_RESPONSE', `the upstream of route ${this.route.id} answered ${status} with more than ${request.maxBytes} bytes`, origin)
    })
  }

  /** fetch and send: one call through the breaker to the next upstream, its answer read whole up to `maxBytes`. */
  async #capture (call: CaptureCall): Promise<CapturedResponse> {
    const { maxBytes } = call
    const guard = this.#guard
    const permit = guard?.tryAcquire() ?? null
    if (permit !== null && !permit.permitted) {
      throw gatewayError(CIRCUIT_OPEN, this.#openDetail(retryAfterSeconds(permit.retryAfterMs)))
    }
    const target = this.#pick()
    const route = this.route
    const started = performance.now()
    const settle = (outcome: 'success' | 'failure', message?: string): void => {
      if (guard !== null && permit !== null) guard.onResult(permit, outcome, performance.now() - started, message)
    }
    let answer: Dispatcher.ResponseData
    try {
      answer = await target.pool.request({
        path: call.path,
        method: call.method,
        headers: call.headersFor(target),
        body: call.body,
        headersTimeout: route.timeoutMs,
        bodyTimeout: route.timeoutMs
      })
    } catch (err) {
      const error = translateUpstreamError(err as Error, route.id, target.origin, route.timeoutMs)
      settle('failure', error.message)
      throw error
    }
    const status = answer.statusCode
    const failed = route.breaker.failureStatuses.includes(status)
    const chunks: Buffer[] = []
    let bytes = 0
    try {
      for await (const chunk of answer.body as AsyncIterable<Buffer>) {
        bytes += chunk.length
        if (bytes > maxBytes) {
          answer.body.destroy()
          break
        }
        chunks.push(chunk)
      }
    } catch (err) {
      const error = translateUpstreamError(err as Error, route.id, target.origin, route.timeoutMs)
      settle('failure', error.message)
      throw error
    }
    settle(failed ? 'failure' : 'success', failed ? `upstream answered ${status}` : undefined)
    if (bytes > maxBytes) throw call.tooLarge(target.origin, status)
    return { status, headers: clientResponseHeaders(answer.headers), body: Buffer.concat(chunks, bytes) }
  }

  /** The answer while the breaker refuses: the route's fallback, or 503 problem+json; both say when to come back. */
  #refuse (reply: FastifyReply, retryAfterMs: number): void {
    const retryAfter = retryAfterSeconds(retryAfterMs)
    reply.header('retry-after', retryAfter)
    const fallback = this.route.breaker.fallback
    if (fallback !== null) {
      // A Buffer, so Fastify sends the configured content type as written (it adds a charset to strings).
      reply.code(fallback.status).header('content-type', fallback.contentType).send(this.#fallbackBody)
      return
    }
    // Answered directly, not thrown through the error handler: a fast-fail is the point of an open breaker.
    this.#answerProblem(reply, CIRCUIT_OPEN, this.#openDetail(retryAfter))
  }

  /**
   * The fast-fail path, for a request no framework has touched yet: when the breaker refuses now, answers `res` at
   * once with what #refuse would send and says how; otherwise changes nothing (not even the request's id, which
   * `requestIdOf` makes only for an answer) and returns null.
   */
  refuseEarly (req: IncomingMessage, res: ServerResponse, requestIdOf: (req: IncomingMessage) => string): EarlyRefusal | null {
    const retryAfterMs = this.tryRefuse()
    if (retryAfterMs === null) return null
    const requestId = requestIdOf(req)
    const retryAfter = retryAfterSeconds(retryAfterMs)
    const fallback = this.route.breaker.fallback
    if (fallback !== null) {
      const body = this.#fallbackBody
      res.writeHead(fallback.status, [
        'x-request-id', requestId, 'retry-after', retryAfter, 'content-type', fallback.contentType, 'content-length', String(body.length)
      ])
      res.end(body)
      return { requestId, status: fallback.status, code: null }
    }
    const body = this.#openProblemBody(retryAfter, requestId)
    res.writeHead(OPEN_STATUS, [
      'x-request-id', requestId, 'retry-after', retryAfter, 'content-type', PROBLEM_CONTENT_TYPE_UTF8, 'content-length', String(Buffer.byteLength(body))
    ])
    res.end(body)
    return { requestId, status: OPEN_STATUS, code: CIRCUIT_OPEN }
  }

  /**
   * When the breaker refuses a call now: records the refusal (as a call it did not permit) and returns the ms until
   * it may permit one; otherwise changes nothing and returns null. For answers given without a call: the early
   * refusal, a stale cached answer in place of one.
   */
  tryRefuse (): number | null {
    const guard = this.#guard
    if (guard === null || !guard.refuses()) return null
    this.#retry?.onOutcome?.(false, false)
    return (guard.tryAcquire() as GuardRefusal).retryAfterMs
  }

  #openDetail (retryAfter: string): string {
    return `the circuit breaker of route ${this.route.id} is open; retry in ${retryAfter} s`
  }

  /** Tunnels a WebSocket Upgrade to the next upstream; `refuse` answers the client when that fails. */
  upgrade (req: IncomingMessage, socket: Duplex, head: Buffer, upstreamPath: string, requestId: string, refuse: UpgradeRefusal): void {
    const target = this.#pick()
    target.pool.upgrade({
      path: upstreamPath,
      method: 'GET',
      headers: this.#headersFor(req, requestId, target),
      protocol: req.headers.upgrade ?? 'websocket'
    }, (err, data) => {
      if (err !== null) {
        refuse(translateUpstreamError(err, this.route.id, target.origin, this.route.timeoutMs))
        return
      }
      const upstream = data.socket
      let response = 'HTTP/1.1 101 Switching Protocols\r\n'
      for (const [name, value] of Object.entries(data.headers)) {
        for (const item of Array.isArray(value) ? value : [value]) response += `${name}: ${String(item)}\r\n`
      }
      socket.write(response + '\r\n')
      if (head.length > 0) upstream.write(head)
      this.#tunnels.add(socket)
      const close = (): void => {
        this.#tunnels.delete(socket)
        socket.destroy()
        upstream.destroy()
      }
      socket.on('error', close).on('close', close)
      upstream.on('error', close).on('close', close)
      socket.pipe(upstream).pipe(socket)
    })
  }

  /** Ends open WebSocket tunnels: the HTTP server counts their sockets and would wait for them forever. */
  endTunnels (): void {
    for (const tunnel of this.#tunnels) tunnel.destroy()
  }

  /** Closes the pools once their requests are done. */
  async close (): Promise<void> {
    await Promise.all(this.#targets.map(async (target) => { await target.pool.close() }))
  }

  /** Closes the pools now, aborting the requests still in flight (a bulk batch given up at the shutdown deadline). */
  async destroy (): Promise<void> {
    await Promise.all(this.#targets.map(async (target) => { await target.pool.destroy() }))
  }

  #pick (): Target {
    const targets = this.#targets
    const target = targets[this.#next] as Target
    this.#next = this.#next + 1 === targets.length ? 0 : this.#next + 1
    return target
  }

  #headersFor (req: IncomingMessage, requestId: string, target: Target, extra?: Readonly<Record<string, string | null>>): OutgoingHeaders {
    const headers = upstreamRequestHeaders(req.headers, {
      upstreamHost: target.host,
      requestId,
      clientAddress: req.socket.remoteAddress ?? '',
      proto: (req.socket as TLSSocket).encrypted === true ? 'https' : 'http',
      trustProxy: this.#trustProxy,
      extra: this.route.headers
    })
    if (extra !== undefined) {
      for (const name in extra) {
        const value = extra[name]
        if (value === null || value === undefined) delete headers[name]
        else headers[name] = value
      }
    }
    return headers
  }
}

/**
 * The open breaker's problem body, serialized once around its two variable parts: serializing a fresh problem per
 * refusal cost a tenth of the whole fast-fail. The result is what JSON.stringify(problemFor(...)) gives, by construction.
 */
function openProblemBody (routeId: string, detail: (retryAfter: string) => string): (retryAfter: string, requestId: string) => string {
  // Markers no detail or route id holds, escaped by JSON.stringify the same way each time.
  const retryMarker = '\u0000retry\u0000'
  const idMarker = '\u0000id\u0000'
  const sample = JSON.stringify(problemFor(CIRCUIT_OPEN, detail(retryMarker), { route: routeId, requestId: idMarker }))
  const [beforeRetry, rest] = sample.split(JSON.stringify(retryMarker).slice(1, -1)) as [string, string]
  const [betweenRetryAndId, afterId] = rest.split(JSON.stringify(idMarker)) as [string, string]
  // A retry-after is digits: nothing to escape. A request id may carry quotes and backslashes.
  return (retryAfter, requestId) => beforeRetry + retryAfter + betweenRetryAndId + JSON.stringify(requestId) + afterId
}

function tooLarge (route: RouteConfig): Error {
  return gatewayError('BW_ERR_REQUEST_BODY_TOO_LARGE', `the body exceeds this route's limit of ${route.bodyLimitBytes} bytes`)
}

/** A chunked body has no declared length, so its size is counted as it streams through. */
async function * limitBody (source: IncomingMessage, route: RouteConfig): AsyncGenerator<Buffer> {
  let received = 0
  for await (const chunk of source as AsyncIterable<Buffer>) {
    received += chunk.length
    if (received > route.bodyLimitBytes) throw tooLarge(route)
    yield chunk
  }
}
