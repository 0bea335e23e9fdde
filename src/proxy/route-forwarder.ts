// Forwarding for one route: its upstream pools (round robin, keep-alive), streamed bodies both ways, WebSocket tunnels.
import type { IncomingMessage } from 'node:http'
import { Readable, type Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Pool, type Dispatcher } from 'undici'
import type { RouteConfig } from '../config/index.js'
import { gatewayError } from '../core/index.js'
import { upstreamRequestHeaders, type OutgoingHeaders } from './headers.js'
import { Exchange } from './exchange.js'
import { translateUpstreamError } from './upstream-errors.js'

interface Target {
  readonly origin: string
  /** host[:port], the Host upstream. */
  readonly host: string
  readonly pool: Pool
}

/** What a refused Upgrade answers with; the caller writes it to the raw socket. */
export type UpgradeRefusal = (err: Error) => void

export class RouteForwarder {
  readonly route: RouteConfig
  readonly #targets: readonly Target[]
  readonly #trustProxy: boolean
  readonly #tunnels = new Set<Duplex>()
  #next = 0

  constructor (route: RouteConfig, options: { trustProxy: boolean }) {
    this.route = route
    this.#trustProxy = options.trustProxy
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

    const target = this.#pick()
    const exchange = new Exchange(reply, target.origin, route.timeoutMs)
    target.pool.dispatch({
      path: upstreamPath,
      method: raw.method as Dispatcher.HttpMethod,
      headers: this.#headersFor(raw, request.id, target),
      body,
      headersTimeout: route.timeoutMs,
      bodyTimeout: route.timeoutMs
    }, exchange)
    if (body === null || raw.readableEnded) exchange.armTimeout()
    else raw.once('end', () => { exchange.armTimeout() })
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
