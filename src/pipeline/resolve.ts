// The match stage: the request target resolved once (dot segments, RFC 3986 section 5.2.4) and matched to a route;
// the same resolved form is what the upstream is asked for.
import type { IncomingMessage } from 'node:http'
import { isReservedPath, type RouteConfig } from '../config/index.js'
import { gatewayError, type GatewayError } from '../core/index.js'
import { hostName, resolveDotSegments, type RouteMatch, type RouteTable } from '../routing/index.js'

export type Resolution =
  | RouteMatch<RouteConfig>
  /** Under the gateway's own prefix (/actuator): never proxied, whatever a catch-all route would make of it. */
  | { readonly kind: 'management' }
  | { readonly kind: 'bad-path', readonly reason: string }
  | { readonly kind: 'malformed', readonly reason: string }

export type Refusal = Exclude<Resolution, { kind: 'route' | 'management' }>

/** A `%` not followed by two hex digits (RFC 3986 section 2.1). */
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/

export function resolve (table: RouteTable<RouteConfig>, req: IncomingMessage): Resolution {
  const url = req.url as string
  if (url[0] !== '/') return { kind: 'bad-path', reason: 'the request target is not a path (origin-form, RFC 9112 section 3.2.1)' }
  const query = url.indexOf('?')
  const rawPath = query === -1 ? url : url.slice(0, query)
  if (BAD_PERCENT.test(rawPath)) return { kind: 'malformed', reason: 'the request target is not valid: a % not followed by two hex digits (RFC 3986 section 2.1)' }
  const path = resolveDotSegments(rawPath)
  if (path === null) return { kind: 'bad-path', reason: 'the path climbs above the root with ..' }
  if (isReservedPath(path)) return { kind: 'management' }
  const match = table.match(req.method as string, hostName(req.headers.host), path)
  if (match.kind !== 'route' || query === -1) return match
  return { ...match, upstreamPath: match.upstreamPath + url.slice(query) }
}

/** The problem a target that no route serves is answered with. */
export function refusalError (refusal: Refusal): GatewayError {
  switch (refusal.kind) {
    case 'bad-path': return gatewayError('BW_ERR_REQUEST_BAD_PATH', refusal.reason)
    case 'malformed': return gatewayError('BW_ERR_REQUEST_MALFORMED', refusal.reason)
    case 'not-found': return gatewayError('BW_ERR_ROUTE_NOT_FOUND', 'no route matches this host and path')
    case 'method-not-allowed': return gatewayError('BW_ERR_ROUTE_METHOD_NOT_ALLOWED', `this path serves ${refusal.allow}`)
  }
}
