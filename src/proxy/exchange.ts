// One request/response exchange with an upstream, as an undici dispatch handler: the response streams straight into
// the client's socket with backpressure, and the route's timeout is a timer of our own.
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyReply } from 'fastify'
import type { Dispatcher } from 'undici'
import { gatewayError } from '../core/index.js'
import { clientResponseHeaders } from './headers.js'
import { translateUpstreamError } from './upstream-errors.js'

type Controller = Dispatcher.DispatchController

/**
 * Why a handler rather than `pool.request()`: the answer is written to the client as undici parses it, with no
 * intermediate Readable and no AbortController (a DOMException per request, measured at ~7% of the proxy's CPU),
 * and the route's timeout is exact: undici's own timers, which the request still carries as a backstop for stalled
 * uploads, tick at 0.5-1 s.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly #reply: FastifyReply
  readonly #origin: string
  readonly #timeoutMs: number
  #timer: NodeJS.Timeout | null = null
  #controller: Controller | null = null
  /** Set once the client has its answer (or is gone): later events from undici change nothing. */
  #settled = false
  #streaming = false

  constructor (reply: FastifyReply, origin: string, timeoutMs: number) {
    this.#reply = reply
    this.#origin = origin
    this.#timeoutMs = timeoutMs
    reply.raw.on('close', this.#onClientClose)
  }

  /**
   * Starts the route's timeout: it bounds the wait for the answer's headers, then each wait for its next chunk.
   * Armed at dispatch for a bodiless request, and once the client's body is in for one with a body.
   */
  armTimeout (): void {
    if (!this.#settled && this.#timer === null) this.#timer = setTimeout(this.#onTimeout, this.#timeoutMs)
  }

  onRequestStart (controller: Controller): void {
    this.#controller = controller
    if (this.#settled) controller.abort(gatewayError('BW_ERR_UPSTREAM_TIMEOUT', this.#timeoutDetail()))
  }

  onResponseStart (controller: Controller, statusCode: number, headers: IncomingHttpHeaders): void {
    if (this.#settled) return
    // 1xx interim answers (RFC 9110 section 15.2) are the gateway's hop, not the client's: wait for the final one.
    if (statusCode < 200) return
    if (this.#timer === null) this.armTimeout()
    else this.#timer.refresh()
    const reply = this.#reply
    const res = reply.raw
    reply.hijack()
    this.#streaming = true
    const outgoing = clientResponseHeaders(headers)
    // Headers set by the gateway's hooks (X-Request-Id, ...) ride along.
    const own = reply.getHeaders()
    for (const name in own) outgoing[name] = own[name] as string | string[]
    res.writeHead(statusCode, outgoing)
  }

  onResponseData (controller: Controller, chunk: Buffer): void {
    if (this.#settled) return
    this.#timer?.refresh()
    const res = this.#reply.raw
    if (!res.write(chunk)) {
      // Backpressure: undici stops reading the upstream socket until the client's has drained.
      controller.pause()
      res.once('drain', () => { controller.resume() })
    }
  }

  onResponseEnd (): void {
    if (this.#settled) return
    this.#settle()
    this.#reply.raw.end()
  }

  onResponseError (_controller: Controller, err: Error): void {
    if (this.#settled) return
    this.#settle()
    if (this.#streaming) {
      // The status line is out: the only honest signal left is a cut connection.
      this.#reply.raw.destroy(err)
      return
    }
    this.#reply.send(translateUpstreamError(err, this.#origin, this.#timeoutMs))
  }

  #settle (): void {
    this.#settled = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#reply.raw.removeListener('close', this.#onClientClose)
  }

  readonly #onTimeout = (): void => {
    if (this.#settled) return
    const err = gatewayError('BW_ERR_UPSTREAM_TIMEOUT', this.#timeoutDetail())
    if (this.#controller !== null) {
      // undici answers the abort with onResponseError(err), which replies or cuts the stream.
      this.#controller.abort(err)
      return
    }
    // Still connecting: answer now; onRequestStart aborts the request if undici ever gets that far.
    this.#settle()
    this.#reply.send(err)
  }

  /** A client that leaves takes its upstream request with it; that is the client's doing, not the upstream's. */
  readonly #onClientClose = (): void => {
    if (this.#settled) return
    this.#settle()
    this.#controller?.abort(new Error('the client closed the connection'))
  }

  #timeoutDetail (): string {
    return `${this.#origin} did not answer within ${this.#timeoutMs} ms`
  }
}
