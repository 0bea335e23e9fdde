// Forwarding for one route: its upstream pools (round robin, keep-alive), streamed bodies both ways, WebSocket tunnels.
import type { IncomingMessage } from 'node:http'
import { Readable, type Duplex } from 'node:stream'
import { readFileSync } from 'node:fs'
import { rootCertificates, type TLSSocket } from 'node:tls'
import type { Dispatcher, Pool } from 'undici'
import type { RouteConfig, UpstreamTlsConfig } from '../config/index.js'
import {
  gatewayError, readBody, retryAfterSeconds,
  type GatewayError,
  type CapturedResponse, type Downstream, type ForwardEnd, type ForwardOptions, type Upstream
} from '../core/index.js'
import { clientResponseHeaders, upstreamRequestHeaders, type OutgoingHeaders } from './headers.js'
import { failureOf, outcomeOf, type CallGuard, type GuardRefusal, type RetryPolicy } from './call-guard.js'
import { Exchange, type ExchangeResult } from './exchange.js'
import { UpstreamPools } from './pools.js'
import { translateUpstreamError, upstreamError } from './upstream-errors.js'

interface Target {
  readonly origin: string
  /** host[:port], the Host upstream. */
  readonly host: string
  readonly pool: Pool
}

/** One client request on its way through attempts. */
interface Call {
  readonly client: Downstream
  readonly body: Dispatcher.DispatchOptions['body']
  /** 0 for the first attempt. */
  readonly attempt: number
  /** Extra attempts this request may make: 0 unless its method is idempotent and its body was not streamed. */
  readonly retries: number
  readonly options: ForwardOptions
  readonly done: (end: ForwardEnd) => void
}

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

/** The route's upstreams as the pipeline and the cache use them: pools, round robin, the breaker and retries around each call. */
export class RouteForwarder implements Upstream {
  readonly route: RouteConfig
  readonly #targets: readonly Target[]
  readonly #trustProxy: boolean
  /** The route's timeout and the send timeout, as every exchange of the route takes them: made once, not per request. */
  readonly #timeouts: { readonly timeoutMs: number, readonly sendTimeoutMs: number }
  readonly #tunnels = new Set<Duplex>()
  /** Called each time a tunnel closes, while a retired route waits for its last one. */
  #tunnelClosed: (() => void) | null = null
  readonly #pools: UpstreamPools
  readonly #guard: CallGuard | null
  readonly #retry: RetryPolicy | null
  #next = 0

  /**
   * `guard`: the route's circuit breaker, without which every call goes through uncounted;
   * `retry`: the route's retry policy, without which nothing is retried;
   * `sendTimeoutMs`: how long a client may take in nothing of an answer (`server.sendTimeout`);
   * `pools`: the gateway's keep-alive pools, shared with the other routes and generations (default: pools of its own).
   */
  constructor (route: RouteConfig, options: { trustProxy: boolean, sendTimeoutMs: number, guard?: CallGuard, retry?: RetryPolicy, pools?: UpstreamPools }) {
    this.route = route
    this.#trustProxy = options.trustProxy
    this.#timeouts = { timeoutMs: route.timeoutMs, sendTimeoutMs: options.sendTimeoutMs }
    this.#guard = options.guard ?? null
    this.#retry = options.retry ?? null
    const pools = options.pools ?? new UpstreamPools()
    this.#pools = pools
    // The route's timeout bounds the connect too.
    const connect = { timeoutMs: route.timeoutMs, tls: upstreamTlsOptions(route.upstreamTls), allowH2: route.upstreamHttp2 }
    this.#targets = route.upstreams.map((origin) => ({
      origin,
      host: new URL(origin).host,
      pool: pools.acquire(origin, origin.startsWith('https:') ? connect : { ...connect, tls: null })
    }))
  }

  /**
   * Forwards the client's request to the next upstream and streams the answer back. What is not relayed (a failure,
   * a refusal, an answer held back) is for the caller to answer: `done` says which.
   */
  forward (client: Downstream, options: ForwardOptions, done: (end: ForwardEnd) => void): void {
    const raw = client.req
    const route = this.route
    const length = raw.headers['content-length']
    if (length !== undefined && Number(length) > route.bodyLimitBytes) {
      done({ kind: 'failed', error: tooLarge(route), answered: false })
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
    this.#attempt({ client, body, attempt: 0, retries, options, done })
  }

  /** One attempt through the breaker; a retryable failure schedules the next, the last one ends the call. */
  #attempt (call: Call): void {
    const { client, body } = call
    const route = this.route
    const guard = this.#guard
    const permit = guard?.tryAcquire() ?? null
    if (permit !== null && !permit.permitted) {
      // Never retried once open: the refusal is the end.
      call.done({ kind: 'refused', retryAfterMs: permit.retryAfterMs, retried: call.attempt > 0 })
      return
    }
    const target = this.#pick()
    const exchange = new Exchange(client, route.id, target.origin, this.#timeouts, {
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
    const req = client.req
    target.pool.dispatch({
      path: client.upstreamPath,
      method: req.method as Dispatcher.HttpMethod,
      headers: this.#headersFor(req, client.requestId, target, call.options.headers),
      body,
      // The exchange's own timer bounds a bodiless request from dispatch on. undici's timers are kept only as the
      // backstop while an upload streams: each request makes a new one (the connection's keep-alive timer, of
      // another kind, sits between two requests), and a cleared one lingers in undici's list for up to a second,
      // long enough to be promoted to the old space.
      headersTimeout: body === null ? 0 : route.timeoutMs,
      bodyTimeout: body === null ? 0 : route.timeoutMs
    }, exchange)
    if (body === null || req.readableEnded) exchange.armTimeout()
    else req.once('end', () => { exchange.armTimeout() })
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
    switch (result.kind) {
      case 'abandoned':
        call.done({ kind: 'abandoned' })
        return
      case 'response':
        // For the retry counts, a relayed 5xx is a failed call; anything else the upstream answered succeeded.
        retry?.onOutcome?.(result.status < 500, retried)
        call.done({ kind: 'relayed', status: result.status, headers: result.headers, captured: result.captured })
        return
      case 'held':
        if (retry !== null && call.attempt < call.retries && retry.retryable({ status: result.status })) {
          this.#retryLater(call, retry.delayMs(call.attempt, result.retryAfter))
          return
        }
        // Held for the caller, who answers the client.
        retry?.onOutcome?.(result.status < 500, retried)
        call.done({ kind: 'held', status: result.status, headers: result.headers })
        return
      case 'failed':
        if (!result.answered && retry !== null && call.attempt < call.retries && retry.retryable(failureOf(result.error.code))) {
          this.#retryLater(call, retry.delayMs(call.attempt, undefined))
          return
        }
        retry?.onOutcome?.(false, retried)
        call.done({ kind: 'failed', error: result.error, answered: result.answered })
    }
  }

  #retryLater (call: Call, delayMs: number): void {
    const res = call.client.res
    // A client that leaves during the wait gets nothing more, and the upstream no further attempt.
    const onClose = (): void => {
      clearTimeout(timer)
      call.done({ kind: 'abandoned' })
    }
    const timer = setTimeout(() => {
      res.removeListener('close', onClose)
      this.#attempt({ ...call, attempt: call.attempt + 1 })
    }, delayMs)
    res.once('close', onClose)
  }

  /**
   * What the retry counts make of a refusal answered without a call (`refusal` taken it): a failed call, never
   * retried once open. Not for an answer that stands in for the call (a stale entry): the client got its answer.
   */
  countRefused (retried: boolean): void {
    this.#retry?.onOutcome?.(false, retried)
  }

  /**
   * A request of the gateway's own on the client's behalf (a background refresh), through the breaker and round
   * robin, its answer read whole. Rejects when the breaker refuses, the upstream fails or times out, or the body
   * exceeds `maxBytes`; a status is an answer, whatever it is (the breaker counts it as any other).
   */
  async fetch (client: Downstream, headers: Readonly<Record<string, string | null>>, maxBytes: number): Promise<CapturedResponse> {
    return await this.#capture({
      method: 'GET',
      path: client.upstreamPath,
      body: null,
      headersFor: (target) => this.#headersFor(client.req, client.requestId, target, headers),
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
      throw gatewayError('BW_ERR_UPSTREAM_CIRCUIT_OPEN', openDetail(this.route.id, retryAfterSeconds(permit.retryAfterMs)))
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
    let body: Buffer | null
    try {
      body = await new Promise<Buffer | null>((resolve, reject) => {
        readBody(answer.body, maxBytes, (err, whole) => { if (err === null) resolve(whole); else reject(err) })
      })
    } catch (err) {
      const error = translateUpstreamError(err as Error, route.id, target.origin, route.timeoutMs)
      settle('failure', error.message)
      throw error
    }
    settle(failed ? 'failure' : 'success', failed ? `upstream answered ${status}` : undefined)
    if (body === null) {
      answer.body.destroy()
      throw call.tooLarge(target.origin, status)
    }
    return { status, headers: clientResponseHeaders(answer.headers), body }
  }

  /** See Upstream.refusal: the breaker's not-permitted count takes it, the retry counts do not. */
  refusal (): number | null {
    const guard = this.#guard
    if (guard === null || !guard.refuses()) return null
    return (guard.tryAcquire() as GuardRefusal).retryAfterMs
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
        if (this.#tunnels.delete(socket)) this.#tunnelClosed?.()
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

  /**
   * A reload retired this route: its open tunnels may go on until they close or `timeoutMs` passes, when they are
   * ended (as at shutdown).
   */
  async drainTunnels (timeoutMs: number): Promise<void> {
    if (this.#tunnels.size === 0) return
    await new Promise<void>((resolve) => {
      const deadline = setTimeout(() => {
        this.endTunnels()
        resolve()
      }, timeoutMs)
      this.#tunnelClosed = () => {
        if (this.#tunnels.size > 0) return
        clearTimeout(deadline)
        resolve()
      }
    })
    this.#tunnelClosed = null
  }

  /** Lets go of the pools: each closes, once its requests are done, when no other route uses it. */
  async close (): Promise<void> {
    await Promise.all(this.#targets.map(async (target) => { await this.#pools.release(target.pool) }))
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
 * node:tls options for a route's https upstreams: its CA besides the system store (or instead, with systemCa: false),
 * its client certificate, the name verified. Read when the route's runtime is built: a reload reads them again.
 */
function upstreamTlsOptions (tls: UpstreamTlsConfig | null): Record<string, unknown> | null {
  if (tls === null) return null
  const options: Record<string, unknown> = { rejectUnauthorized: tls.rejectUnauthorized }
  // Node's `ca` replaces the system store: kept beside it unless systemCa is false.
  if (tls.caFile !== null) options.ca = tls.systemCa ? [...rootCertificates, readFileSync(tls.caFile, 'utf8')] : readFileSync(tls.caFile, 'utf8')
  else if (!tls.systemCa) options.ca = []
  if (tls.certFile !== null && tls.keyFile !== null) {
    options.cert = readFileSync(tls.certFile, 'utf8')
    options.key = readFileSync(tls.keyFile, 'utf8')
  }
  if (tls.servername !== null) options.servername = tls.servername
  return options
}

/** The open breaker's problem detail: when the route takes calls again. */
export function openDetail (routeId: string, retryAfter: string): string {
  return `the circuit breaker of route ${routeId} is open; retry in ${retryAfter} s`
}

function tooLarge (route: RouteConfig): GatewayError {
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
