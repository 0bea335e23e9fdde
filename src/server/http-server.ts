// The Node HTTP server under Fastify: RFC 9112 framing checks and slowloris limits, before any routing happens.
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { isIPv6, type Socket } from 'node:net'
import type { ServerConfig } from '../config/index.js'
import { problemFor, rawProblemResponse, type Problem } from '../core/index.js'
import { requestIdFor } from '../pipeline/index.js'
import { listenerTlsOptions } from './tls.js'

/** Node's own limit on the bytes of a request's header section; past it Node raises HPE_HEADER_OVERFLOW (431). */
export const MAX_HEADER_BYTES = 16 * 1024

/** Fastify's keep-alive default, longer than the 60 s idle timeout of common load balancers in front. */
const KEEP_ALIVE_TIMEOUT_MS = 72_000

/**
 * Builds the server Fastify runs on (its serverFactory). Node's strict parser already refuses Content-Length with
 * Transfer-Encoding, conflicting lengths and unknown codings; what it lets through, a duplicate or missing Host or
 * too many fields, is refused here, before Fastify sees the request.
 */
export function createGatewayServer (handler: RequestListener, config: ServerConfig): Server {
  const options: ServerOptions = {
    maxHeaderSize: MAX_HEADER_BYTES,
    headersTimeout: config.headersTimeoutMs,
    // Fastify's default of 0 must stay: a large upload may take longer than any fixed request deadline.
    requestTimeout: 0,
    // Node checks the headers deadline at this interval: a quarter of it bounds the overshoot.
    connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(config.headersTimeoutMs / 4))),
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // Checked below, to answer with a problem body rather than Node's empty 400.
    requireHostHeader: false
  }
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const problem = headerRefusal(req, config.maxHeaders)
    if (problem === null) {
      handler(req, res)
      return
    }
    res.shouldKeepAlive = false
    res.writeHead(problem.status, { 'content-type': 'application/problem+json', 'x-request-id': problem.requestId ?? '' })
    res.end(JSON.stringify(problem))
  }
  // HTTPS when server.tls is set: the same options, the same checks, behind the TLS handshake.
  const server = config.tls === null ? createServer(options, listener) : createHttpsServer({ ...options, ...listenerTlsOptions(config.tls) }, listener)
  // One more than allowed, so that a request over the limit shows itself instead of being silently truncated.
  server.maxHeadersCount = config.maxHeaders + 1
  return server
}

/**
 * Ends the connections that have not sent a single byte. Node's closeIdleConnections() leaves them open (they never
 * started a request), and a client that opened one and went quiet would otherwise hold a shutdown until its
 * headers timeout.
 */
export function closeSilentConnections (connections: ReadonlySet<Socket>): void {
  for (const socket of connections) if (socket.bytesRead === 0) socket.destroy()
}

/** The open connections of `server`, kept as they come and go (per connection, never per request). */
export function trackConnections (server: Server): ReadonlySet<Socket> {
  const connections = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    connections.add(socket)
    socket.once('close', () => connections.delete(socket))
  })
  return connections
}

/**
 * Host = uri-host [ ":" port ] (RFC 9110 section 7.2), uri-host being an IP-literal in brackets, an IPv4 address or a
 * reg-name (RFC 3986 section 3.2.2); empty is valid (RFC 9110 section 7.2, a target without authority). A comma is
 * refused although reg-name allows it: a comma is how repeated fields are joined (RFC 9110 section 5.3), so
 * `a.example, b.example` is two Hosts in one field, and a server behind that picks the other one routes elsewhere.
 */
const HOST = /^(?:\[(?:([0-9A-Fa-f:.]+)|[vV][0-9A-Fa-f]+\.[\w.~!$&'()*+;=:-]+)\]|(?:[\w.~!$&'()*+;=-]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?$/

const LEFT_BRACKET = 0x5b

/** Whether a Host field value is uri-host [ ":" port ]: no path, no userinfo, no list, no whitespace. */
function isValidHost (value: string): boolean {
  // A name or an IPv4 address, as nearly every request has: a test, without the match array exec makes per request.
  if (value.charCodeAt(0) !== LEFT_BRACKET) return HOST.test(value)
  const match = HOST.exec(value)
  if (match === null) return false
  const ipv6 = match[1]
  return ipv6 === undefined || isIPv6(ipv6)
}

/** The problem with a request's header section that Node's parser lets through, or null. */
export function headerRefusal (req: IncomingMessage, maxHeaders: number): Problem | null {
  const raw = req.rawHeaders
  if (raw.length > maxHeaders * 2) {
    return problemFor('BW_ERR_REQUEST_HEADERS_TOO_LARGE', `more than ${maxHeaders} header fields`, { requestId: requestIdFor(req) })
  }
  let hosts = 0
  let codings: string | null = null
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++
    else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') codings = codings === null ? raw[i + 1] as string : `${codings}, ${raw[i + 1] as string}`
  }
  // RFC 9112 section 3.2: an HTTP/1.1 request has exactly one Host field.
  if (hosts > 1 || (hosts === 0 && req.httpVersion === '1.1')) {
    return problemFor('BW_ERR_REQUEST_MALFORMED', hosts > 1 ? 'more than one Host header' : 'an HTTP/1.1 request without a Host header', { requestId: requestIdFor(req) })
  }
  // RFC 9112 section 3.2: a Host field with an invalid value is answered 400.
  if (hosts === 1 && !isValidHost(req.headers.host as string)) {
    return problemFor('BW_ERR_REQUEST_MALFORMED', 'the Host header is not a host[:port] (RFC 9110 section 7.2)', { requestId: requestIdFor(req) })
  }
  // RFC 9112 section 6.1: chunked, once, is the only coding the gateway can decode; llhttp lets `gzip, chunked` and
  // split fields (`identity` then `chunked`) through. Transfer-Encoding on HTTP/1.0 is faulty framing.
  if (codings !== null && (req.httpVersion !== '1.1' || codings.toLowerCase() !== 'chunked')) {
    return problemFor('BW_ERR_REQUEST_MALFORMED', req.httpVersion !== '1.1'
      ? 'Transfer-Encoding on an HTTP/1.0 request'
      : 'a transfer coding other than a single chunked', { requestId: requestIdFor(req) })
  }
  return null
}

/** Fastify's clientErrorHandler: what Node's parser refused, answered as a problem and never forwarded. */
export function onClientError (err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  if (socket.writable) {
    const problem = err.code === 'HPE_HEADER_OVERFLOW'
      ? problemFor('BW_ERR_REQUEST_HEADERS_TOO_LARGE', `the header section exceeds ${MAX_HEADER_BYTES} bytes`)
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? problemFor('BW_ERR_REQUEST_TIMEOUT', 'the request headers did not arrive in time')
        // llhttp's reason (e.g. "Transfer-Encoding can't be present with Content-Length") names the fault, not our code.
        : problemFor('BW_ERR_REQUEST_MALFORMED', `the request is not valid HTTP/1.1: ${(err as { reason?: string }).reason ?? err.code ?? 'parse error'}`)
    socket.end(rawProblemResponse(problem), () => socket.destroy())
    return
  }
  socket.destroy()
}
