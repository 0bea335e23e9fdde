// Cache keys: one Redis Cluster hash slot per route and path, so an entry, its lock and its path's invalidation marker go together.
import { createHash } from 'node:crypto'

/** Request header fields as Node and undici hand them over: lower-case names. */
export type HeaderFields = Readonly<Record<string, string | readonly string[] | undefined>>

/** The parts of a request the cache reads. */
export interface CacheRequest {
  readonly method: string
  /** The request target as received: path and optional query (`/items?b=2&a=1`). */
  readonly url: string
  readonly headers: HeaderFields
}

/** The keys of one cache entry; all share a hash tag, so one MGET or MULTI can span them on a cluster. */
export interface CacheKeys {
  /** The stored response. */
  readonly entry: string
  /**
   * The URL's own key: its response when that has no Vary, else its variant index (see `variants.ts`). The same as
   * `entry` but for the keys of a variant (`variantKeys`).
   */
  readonly primary: string
  /** A short lock taken so one instance at a time fetches this entry (request collapsing). */
  readonly lock: string
  /** The marker that invalidates every variant of this path (see `invalidationKey`). */
  readonly invalidation: string
}

/**
 * Every key a route writes starts with this, and no key of another route does (route ids are slugs without `:`),
 * so a route-wide purge is a SCAN for this prefix. `keyPrefix` and route ids must not hold `{` or `}`: Redis Cluster
 * hashes the text between the first `{` and the next `}`, and a brace in either would move the tag.
 */
export function routePrefix (keyPrefix: string, routeId: string): string {
  return `${keyPrefix}{${routeId}:`
}

/**
 * The keys for a request: `<prefix>{<routeId>:<hash(host, path)>}:<hash(query, vary values)>`, plus `:lock` for the
 * lock and `<tag>:inv` for the invalidation marker. Both hashes are SHA-256 in base64url (43 characters): the URL
 * and header values never appear in clear, and every entry key of a route has the same length whatever the URL.
 * A response with its own Vary is stored under `variantKeys` of these.
 *
 * - The method is left out: only GET and HEAD are cached and a stored GET answers a HEAD (RFC 9111 section 4).
 * - The host is lower-cased (RFC 9110 section 4.2.3) and keeps its port: `example.com:8080` may be another site.
 *   The scheme is not in the key; a route is served over one.
 * - Query parameters are sorted by name, stably, so `?b=2&a=1` and `?a=1&b=2` share an entry while `?a=1&a=2` and
 *   `?a=2&a=1` do not; names and values stay as sent (no percent-decoding) and empty pieces (`&&`) are dropped.
 * - `vary` (the route's `cache.vary`, lower-case names) adds those request fields' values (`varyValue`), absent and
 *   empty told apart. The response's own Vary picks a variant under this key (`variantKeys`), once a response is known.
 */
export function cacheKeys (keyPrefix: string, routeId: string, req: CacheRequest, vary: readonly string[]): CacheKeys {
  const { path, query } = splitTarget(req.url)
  const tag = tagOf(keyPrefix, routeId, hostOf(req.headers), path)
  const entry = `${tag}:${digest(JSON.stringify([sortQuery(query), varyValues(req.headers, vary)]))}`
  return { entry, primary: entry, lock: `${entry}:lock`, invalidation: `${tag}:inv` }
}

/**
 * The keys of the variant of `keys` that a response with `Vary: <names>` (lower-case) stores for a request with
 * `headers`: `<primary>:v:<hash(names, their values)>`, in the primary key's hash slot, with a lock of its own. The
 * names' order does not matter, nor what `varyValue` normalises (RFC 9111 section 4.1).
 */
export function variantKeys (keys: CacheKeys, names: readonly string[], headers: HeaderFields): CacheKeys {
  const entry = `${keys.primary}:v:${variantId(names, headers)}`
  return { entry, primary: keys.primary, lock: `${entry}:lock`, invalidation: keys.invalidation }
}

/** The part of a variant's key after `:v:`: the hash of the names and their values. */
export function variantId (names: readonly string[], headers: HeaderFields): string {
  return digest(JSON.stringify(varyValues(headers, names)))
}

/**
 * The invalidation marker of a host and path on a route: the same key `cacheKeys` gives, without a request at hand
 * (a purge of one path). A query in `path` is ignored.
 */
export function invalidationKey (keyPrefix: string, routeId: string, host: string, path: string): string {
  return `${tagOf(keyPrefix, routeId, host.toLowerCase(), splitTarget(path).path)}:inv`
}

/** The request target with its query parameters in key order (see `cacheKeys`): what a stored entry answers. */
export function normalizeTarget (url: string): string {
  const { path, query } = splitTarget(url)
  const sorted = sortQuery(query)
  return sorted === '' ? path : `${path}?${sorted}`
}

/** The path of a request target, without its query. */
export function pathOf (url: string): string {
  return splitTarget(url).path
}

/** A header field as one string: lines of a repeated field joined with `, ` (RFC 9110 section 5.3). */
export function fieldValue (headers: HeaderFields, name: string): string | undefined {
  const value = headers[name]
  return value === undefined || typeof value === 'string' ? value : value.join(', ')
}

/**
 * Fields whose values are lists that compare without case: charsets, content codings and language ranges (RFC 9110
 * sections 12.5.2-12.5.4, 8.4.1; RFC 4647 section 2). Their parameters are weights (`;q=0.5`), never quoted.
 */
const CASELESS_LIST_FIELDS = new Set(['accept-charset', 'accept-encoding', 'accept-language'])

/** List fields (RFC 9110 section 5.6.1) whose parameters' values may be case-sensitive (RFC 9110 section 12.5.1). */
const LIST_FIELDS = new Set([...CASELESS_LIST_FIELDS, 'accept'])

/**
 * A request field's value as a cache compares it for Vary (RFC 9111 section 4.1): repeated lines joined, the
 * whitespace around it dropped; for a list field also the whitespace around its items and their `;` parameters, and
 * empty items (RFC 9110 section 5.6.1); lower-cased where the field is case-insensitive. So `en, de` and `EN,de` are
 * one value. A value with a quoted string is kept as sent but for its ends: its whitespace may be part of it.
 */
export function varyValue (headers: HeaderFields, name: string): string | undefined {
  const value = fieldValue(headers, name)
  if (value === undefined) return undefined
  if (!LIST_FIELDS.has(name) || value.includes('"')) return value.trim()
  const items: string[] = []
  for (const item of value.split(',')) {
    const normalised = item.split(';').map((part) => part.trim()).join(';')
    if (normalised !== '') items.push(normalised)
  }
  const list = items.join(',')
  return CASELESS_LIST_FIELDS.has(name) ? list.toLowerCase() : list
}

/** The Host header, lower-cased; empty when absent (HTTP/1.0). */
export function hostOf (headers: HeaderFields): string {
  return (fieldValue(headers, 'host') ?? '').toLowerCase()
}

/** The names (sorted: their order means nothing) with their values, absent as null. */
function varyValues (headers: HeaderFields, names: readonly string[]): Array<[string, string | null]> {
  return [...names].sort().map((name) => [name, varyValue(headers, name) ?? null])
}

function tagOf (keyPrefix: string, routeId: string, host: string, path: string): string {
  return `${routePrefix(keyPrefix, routeId)}${digest(JSON.stringify([host, path]))}}`
}

function splitTarget (url: string): { path: string, query: string } {
  const mark = url.indexOf('?')
  return mark === -1 ? { path: url, query: '' } : { path: url.slice(0, mark), query: url.slice(mark + 1) }
}

function sortQuery (query: string): string {
  if (query === '') return ''
  const pieces = query.split('&').filter((piece) => piece !== '')
  // Array#sort is stable, so repeated names keep their order; code-unit order, never the locale's.
  return pieces.map((piece) => [nameOf(piece), piece] as const)
    .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    .map(([, piece]) => piece)
    .join('&')
}

function nameOf (piece: string): string {
  const equals = piece.indexOf('=')
  return equals === -1 ? piece : piece.slice(0, equals)
}

function digest (text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}
