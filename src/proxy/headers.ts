// Header rewriting at the proxy hop: hop-by-hop fields stripped both ways (RFC 9110 section 7.6.1), X-Forwarded-* set.
import type { IncomingHttpHeaders } from 'node:http'

export type OutgoingHeaders = Record<string, string | string[]>

/**
 * Fields that describe one connection, never forwarded (RFC 9110 section 7.6.1), plus `expect`:
 * the gateway has already answered `100-continue` to its client (RFC 9110 section 10.1.1).
 */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings', 'expect'
])

/**
 * Never forwarded upstream either: IIS, Symfony and Zend route by these instead of the request target, so a client
 * could pick the page the origin serves for a URL, and a cached copy of it would reach everyone asking that URL.
 */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'x-original-url', 'x-rewrite-url'])

/** The extra fields a Connection header names are hop-by-hop too (RFC 9110 section 7.6.1). */
function connectionListed (connection: string | string[] | undefined): string[] | null {
  if (connection === undefined) return null
  const value = Array.isArray(connection) ? connection.join(',') : connection
  const lower = value.toLowerCase()
  // The common values name no other field; skip the split for them.
  if (lower === 'keep-alive' || lower === 'close') return null
  return lower.split(',').map((token) => token.trim()).filter((token) => token !== '')
}

/** What the gateway adds to every request it forwards. */
export interface ForwardingContext {
  /** The upstream's host[:port], sent as Host. */
  readonly upstreamHost: string
  readonly requestId: string
  /** The address of the peer that connected to the gateway. */
  readonly clientAddress: string
  /** `http` or `https`, as the gateway received the request. */
  readonly proto: string
  /** Keep X-Forwarded-Host and -Proto a client sent. */
  readonly trustProxy: boolean
  readonly extra: Readonly<Record<string, string>>
}

export function upstreamRequestHeaders (incoming: IncomingHttpHeaders, context: ForwardingContext): OutgoingHeaders {
  const headers: OutgoingHeaders = {}
  for (const name in incoming) {
    if (NOT_FORWARDED.has(name)) continue
    headers[name] = incoming[name] as string | string[]
  }
  const listed = connectionListed(incoming.connection)
  if (listed !== null) for (const name of listed) delete headers[name]

  const forwardedFor = incoming['x-forwarded-for']
  headers['x-forwarded-for'] = forwardedFor === undefined ? context.clientAddress : `${forwardedFor}, ${context.clientAddress}`
  if (!context.trustProxy || incoming['x-forwarded-host'] === undefined) headers['x-forwarded-host'] = incoming.host ?? ''
  if (!context.trustProxy || incoming['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = context.proto
  headers.host = context.upstreamHost
  headers['x-request-id'] = context.requestId
  for (const name in context.extra) headers[name] = context.extra[name] as string
  return headers
}

/** The upstream's response headers as the client gets them: without hop-by-hop fields. */
export function clientResponseHeaders (upstream: Record<string, string | string[] | undefined>): OutgoingHeaders {
  const headers: OutgoingHeaders = {}
  for (const name in upstream) {
    const value = upstream[name]
    if (value === undefined || HOP_BY_HOP.has(name)) continue
    headers[name] = value
  }
  const listed = connectionListed(upstream.connection)
  if (listed !== null) for (const name of listed) delete headers[name]
  return headers
}
