// Forwarding for one route: its upstream pools (round robin, keep-alive), streamed bodies both ways, WebSocket tunnels.
import type { IncomingMessage } from 'node:http'
import { Readable, type Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Pool, type Dispatcher } from 'undici'
import type { RouteConfig } from '../config/index.js'
import { gatewayError, type ErrorCode } from '../core/index.js'
import { upstreamRequestHeaders, type OutgoingHeaders } from './headers.js'
import { failureOf, outcomeOf, type CallGuard, type RetryPolicy } from './call-guard.js'
import { Exchange, type ExchangeResult } from './exchange.js'
import { translateUpstreamError } from './upstream-errors.js'

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
}

/** Answers the request with the gateway's problem `code`. */
export type ProblemAnswer = (reply: FastifyReply, code: ErrorCode, detail: string) => void

/** What a refused Upgrade answers with; the caller writes it to the raw socket. */
export type UpgradeRefusal = (err: Error) => void

export class RouteForwarder {
  readonly route: RouteConfig
  readonly #targets: readonly Target[]
  readonly #trustProxy: boolean
  readonly #tunnels = new Set<Duplex>()
  readonly #guard: CallGuard | null
  readonly #retry: RetryPolicy | null
  readonly #fallbackBody: Buffer
  readonly #answerProblem: ProblemAnswer
  #next = 0

  /**
   * `guard`: the route's circuit breaker, without which every call goes through uncounted;
   * `retry`: the route's retry policy, without which nothing is retried;
   * `answerProblem`: how a refusal is answered; by default the error goes through Fastify's error handler.
   */
  constructor (route: RouteConfig, options: { trustProxy: boolean, guard?: CallGuard, retry?: RetryPolicy, answerProblem?: ProblemAnswer }) {
    this.route = route
    this.#trustProxy = options.trustProxy
    this.#guard = options.guard ?? null
    this.#retry = options.retry ?? null
    this.#fallbackBody = Buffer.from(route.breaker.fallback?.body ?? '')
    this.#answerProblem = options.answerProblem ?? ((reply, code, detail) => { reply.send(gatewayError(code, detail)) })
    this.#targets = route.upstreams.map((origin) => ({
      origin,
      host: new URL(origin).host,
      // One pool per upstream and route, so the route's timeout bounds the connect too.
      pool: new Pool(origin, { connect: { timeout: route.timeoutMs } })
    }))
  }

  /** Forwards the request to the next upstream and streams the answer back; failures become 502/504 problems. */
  forward (request: FastifyRequest, reply: FastifyReply, upstreamPath: string): void {
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
    this.#attempt({ request, reply, upstreamPath, body, attempt: 0, retries })
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
      this.#refuse(reply, permit.retryAfterMs)
      return
    }
    const target = this.#pick()
    const retry = this.#retry
    const exchange = new Exchange(reply, target.origin, route.timeoutMs, {
      holdBack: retry !== null && call.attempt < call.retries ? (status) => retry.retryable({ status }) : undefined,
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
      headers: this.#headersFor(request.raw, request.id, target),
      body,
      headersTimeout: route.timeoutMs,
      bodyTimeout: route.timeoutMs
    }, exchange)
    if (body === null || request.raw.readableEnded) exchange.armTimeout()
    else request.raw.once('end', () => { exchange.armTimeout() })
  }

  #afterAttempt (call: Call, result: ExchangeResult): void {
    const retry = this.#retry
    const retried = call.attempt > 0
    switch (result.kind) {
      case 'abandoned':
        return
      case 'response':
        // For the retry counts, a relayed 5xx is a failed call; anything else the upstream answered succeeded.
        retry?.onOutcome?.(result.status < 500, retried)
        return
      case 'held':
        this.#retryLater(call, (retry as RetryPolicy).delayMs(call.attempt, result.retryAfter))
        return
      case 'failed':
        if (!result.answered && retry !== null && call.attempt < call.retries && retry.retryable(failureOf(result.error.code))) {
          this.#retryLater(call, retry.delayMs(call.attempt, undefined))
          return
        }
        retry?.onOutcome?.(false, retried)
        if (!result.answered) call.reply.send(result.error)
    }
  }

  #retryLater (call: Call, delayMs: number): void {
    const res = call.reply.raw
    // A client that leaves during the wait gets nothing more, and the upstream no further attempt.
    const onClose = (): void => { clearTimeout(timer) }
    const timer = setTimeout(() => {
      res.removeListener('close', onClose)
      this.#attempt({ ...call, attempt: call.attempt + 1 })
    }, delayMs)
    res.once('close', onClose)
  }

  /** The answer while the breaker refuses: the route's fallback, or 503 problem+json; both say when to come back. */
  #refuse (reply: FastifyReply, retryAfterMs: number): void {
    const retryAfter = String(Math.max(1, Math.ceil(retryAfterMs / 1000)))
    reply.header('retry-after', retryAfter)
    const fallback = this.route.breaker.fallback
    if (fallback !== null) {
      // A Buffer, so Fastify sends the configured content type as written (it adds a charset to strings).
      reply.code(fallback.status).header('content-type', fallback.contentType).send(this.#fallbackBody)
      return
    }
    // Answered directly, not thrown through the error handler: a fast-fail is the point of an open breaker.
    this.#answerProblem(reply, 'BW_ERR_UPSTREAM_CIRCUIT_OPEN', `the circuit breaker of route ${this.route.id} is open; retry in ${retryAfter} s`)
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
        refuse(translateUpstreamError(err, target.origin, this.route.timeoutMs))
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

  #pick (): Target {
    const targets = this.#targets
    const target = targets[this.#next] as Target
    this.#next = this.#next + 1 === targets.length ? 0 : this.#next + 1
    return target
  }

  #headersFor (req: IncomingMessage, requestId: string, target: Target): OutgoingHeaders {
    return upstreamRequestHeaders(req.headers, {
      upstreamHost: target.host,
      requestId,
      clientAddress: req.socket.remoteAddress ?? '',
      proto: (req.socket as TLSSocket).encrypted === true ? 'https' : 'http',
      trustProxy: this.#trustProxy,
      extra: this.route.headers
    })
  }
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
