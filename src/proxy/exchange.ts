// One request/response exchange with an upstream, as an undici dispatch handler: the response streams straight into
// the client's socket with backpressure, and the route's timeout is a timer of our own.
import type { IncomingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'
import type { CapturedResponse, Downstream, GatewayError } from '../core/index.js'
import { clientResponseHeaders, type OutgoingHeaders } from './headers.js'
import { timeoutDetail, translateUpstreamError, upstreamError } from './upstream-errors.js'

type Controller = Dispatcher.DispatchController

/** How an exchange ended. */
export type ExchangeResult =
  /**
   * The upstream's answer, relayed to the client in full; `captured` when `captureUpToBytes` was asked for and the
   * body fitted.
   */
  | {
    readonly kind: 'response'
    readonly status: number
    /** The upstream's header fields as received. */
    readonly headers: IncomingHttpHeaders
    readonly captured: CapturedResponse | null
    readonly durationMs: number
  }
  /** The upstream's answer, held back from the client because `holdBack` asked for it: the caller answers or retries. */
  | { readonly kind: 'held', readonly status: number, readonly headers: OutgoingHeaders, readonly retryAfter: string | undefined, readonly durationMs: number }
  /** The exchange failed; unless `answered` (the client's response was under way and has been cut), the caller answers. */
  | { readonly kind: 'failed', readonly error: GatewayError, readonly answered: boolean, readonly durationMs: number }
  /** The client left first. */
  | { readonly kind: 'abandoned', readonly durationMs: number }

type Ending = ExchangeResult extends infer R ? R extends unknown ? Omit<R, 'durationMs'> : never : never

export interface ExchangeHooks {
  /** Asked once the final status is known: true holds the answer back from the client (it is about to be retried). */
  readonly holdBack?: (status: number) => boolean
  /** Hears exactly once how the exchange ended. */
  readonly onDone: (result: ExchangeResult) => void
  /** Keep a copy of an answer whose body is at most this many bytes, for the caller (the cache). Default: none. */
  readonly captureUpToBytes?: number
}

/**
 * Why a handler rather than `pool.request()`: the answer is written to the client as undici parses it, with no
 * intermediate Readable and no AbortController (a DOMException per request, measured at ~7% of the proxy's CPU),
 * and the route's timeout is exact: undici's own timers, which the request still carries as a backstop for stalled
 * uploads, tick at 0.5-1 s.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly #client: Downstream
  /** The route's id, for the client's problem; the upstream's origin, for the log only. */
  readonly #route: string
  readonly #origin: string
  readonly #timeoutMs: number
  readonly #sendTimeoutMs: number
  /** The route's timeout while the upstream is awaited; the send timeout while the client is. */
  #timer: NodeJS.Timeout | null = null
  #controller: Controller | null = null
  /** Set once the client has its answer (or is gone): later events from undici change nothing. */
  #settled = false
  #streaming = false
  #status = 0
  /** Bytes of the body still to come by its Content-Length, or -1 without one. */
  #remaining = -1
  /** The body's last chunk, held for `res.end(chunk)`: one write and no extra tick for the common whole-in-one answer. */
  #last: Buffer | undefined = undefined
  #headers: IncomingHttpHeaders = {}
  /** The answer's headers and body so far, while it is being captured and still fits. */
  #capture: { headers: OutgoingHeaders, chunks: Buffer[], bytes: number } | null = null
  readonly #startedAt = performance.now()
  readonly #hooks: ExchangeHooks

  /** `timeoutMs`: the route's timeout; `sendTimeoutMs`: how long the client may take in nothing (`server.sendTimeout`). */
  constructor (client: Downstream, route: string, origin: string, timeouts: { readonly timeoutMs: number, readonly sendTimeoutMs: number }, hooks: ExchangeHooks) {
    this.#client = client
    this.#route = route
    this.#origin = origin
    this.#timeoutMs = timeouts.timeoutMs
    this.#sendTimeoutMs = timeouts.sendTimeoutMs
    this.#hooks = hooks
    client.res.on('close', this.#onClientClose)
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
    if (this.#settled) controller.abort(this.#timeoutError())
  }

  onResponseStart (controller: Controller, statusCode: number, headers: IncomingHttpHeaders, statusMessage: string): void {
    if (this.#settled) return
    if (statusCode < 200) {
      this.#interim(statusCode, statusMessage, headers)
      return
    }
    if (this.#hooks.holdBack?.(statusCode) === true) {
      const retryAfter = headers['retry-after']
      this.#settle({
        kind: 'held', status: statusCode, headers: clientResponseHeaders(headers), retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter
      })
      // The held answer's body is of no use; closing its connection is cheaper than reading it.
      controller.abort(new Error('answer held back for a retry'))
      return
    }
    this.#status = statusCode
    const length = headers['content-length']
    if (typeof length === 'string') this.#remaining = Number(length)
    this.#headers = headers
    if (this.#timer === null) this.armTimeout()
    else this.#timer.refresh()
    this.#streaming = true
    const outgoing = clientResponseHeaders(headers)
    const limit = this.#hooks.captureUpToBytes
    if (limit !== undefined && !(Number(headers['content-length']) > limit)) this.#capture = { headers: { ...outgoing }, chunks: [], bytes: 0 }
    this.#client.writeHead(statusCode, outgoing)
  }

  onResponseData (controller: Controller, chunk: Buffer): void {
    if (this.#settled) return
    this.#timer?.refresh()
    const capture = this.#capture
    if (capture !== null) {
      capture.bytes += chunk.length
      if (capture.bytes > (this.#hooks.captureUpToBytes as number)) this.#capture = null
      else capture.chunks.push(chunk)
    }
    if (this.#remaining !== -1) {
      this.#remaining -= chunk.length
      // The end follows at once (undici parses it from the same read): waiting for it costs nothing.
      if (this.#remaining === 0) {
        this.#last = chunk
        return
      }
    }
    if (!this.#client.res.write(chunk)) {
      // Backpressure: undici stops reading the upstream socket until the client's has drained.
      controller.pause()
      this.#awaitClient(controller)
    }
  }

  /**
   * While the client's socket is full, the route's timeout (which bounds the upstream's pauses) stops, or a large
   * answer to a slow reader would be cut off mid-body; the send timeout bounds the client's instead, as nginx's
   * send_timeout does: a client whose socket has not drained for that long is disconnected, and its upstream request
   * aborted with it (see #onClientClose). The socket drains once the kernel takes what Node holds, so a client that
   * reads, however slowly, keeps it going.
   */
  #awaitClient (controller: Controller): void {
    const res = this.#client.res
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => { res.destroy() }, this.#sendTimeoutMs)
    res.once('drain', () => {
      if (this.#settled) return
      clearTimeout(this.#timer as NodeJS.Timeout)
      this.#timer = setTimeout(this.#onTimeout, this.#timeoutMs)
      controller.resume()
    })
  }

  onResponseEnd (): void {
    if (this.#settled) return
    const capture = this.#capture
    const captured = capture === null ? null : { status: this.#status, headers: capture.headers, body: Buffer.concat(capture.chunks, capture.bytes) }
    // The client's answer first, the accounting (breaker, retries, the caller) after.
    this.#client.res.end(this.#last)
    this.#settle({ kind: 'response', status: this.#status, headers: this.#headers, captured })
  }

  onResponseError (_controller: Controller, err: Error): void {
    if (this.#settled) return
    const error = translateUpstreamError(err, this.#route, this.#origin, this.#timeoutMs)
    // Once the status line is out, the only honest signal left is a cut connection.
    if (this.#streaming) this.#client.res.destroy(err)
    this.#settle({ kind: 'failed', error, answered: this.#streaming })
  }

  /**
   * Passes a 1xx interim answer (103 Early Hints, 102 Processing) on ahead of the final one, as a proxy must (RFC 9110
   * section 15.2), on the client's socket: Node's writeEarlyHints drops hints without a Link and writeProcessing sends
   * no fields. Never to an HTTP/1.0 client (same section); a response still queued behind an earlier one on its
   * connection (pipelining) has no socket yet and skips it. Never stored: the cache only sees final answers. undici
   * hands over no 1xx once the final status is in, fails on a 100 it did not ask for and on a 101 but for an upgrade.
   */
  #interim (statusCode: number, statusMessage: string, headers: IncomingHttpHeaders): void {
    const res = this.#client.res
    const socket = res.socket
    if (res.req.httpVersion === '1.0' || socket?.writable !== true) return
    // The upstream's reason phrase: a 1xx Node has no name for (104) keeps its own.
    let head = `HTTP/1.1 ${statusCode} ${statusMessage}\r\n`
    const fields = clientResponseHeaders(headers)
    for (const name in fields) {
      for (const value of [fields[name] as string | string[]].flat()) head += `${name}: ${value}\r\n`
    }
    socket.write(head + '\r\n', 'latin1')
  }

  #settle (ending: Ending): void {
    this.#settled = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#client.res.removeListener('close', this.#onClientClose)
    this.#hooks.onDone({ ...ending, durationMs: performance.now() - this.#startedAt })
  }

  readonly #onTimeout = (): void => {
    if (this.#settled) return
    const err = this.#timeoutError()
    if (this.#controller !== null) {
      // undici answers the abort with onResponseError(err), which settles.
      this.#controller.abort(err)
      return
    }
    // Still connecting: settle now; onRequestStart aborts the request if undici ever gets that far.
    this.#settle({ kind: 'failed', error: err, answered: false })
  }

  /** A client that leaves takes its upstream request with it; that is the client's doing, not the upstream's. */
  readonly #onClientClose = (): void => {
    if (this.#settled) return
    this.#settle({ kind: 'abandoned' })
    this.#controller?.abort(new Error('the client closed the connection'))
  }

  #timeoutError (): GatewayError {
    return upstreamError('BW_ERR_UPSTREAM_TIMEOUT', timeoutDetail(this.#route, this.#timeoutMs), this.#origin)
  }
}
