// RFC 9111 shared-cache decisions for the proxy path, over http-cache-semantics: pure, the time is always passed in.
import { createHash } from 'node:crypto'
import CachePolicy from 'http-cache-semantics'
import { storedHeaders, type CacheEntry, type EntryHead, type StoredHeaders } from './entry.js'
import { parseHttpDate } from './http-date.js'
import { fieldValue, hostOf, normalizeTarget, pathOf, varyValue, type CacheRequest, type HeaderFields } from './key.js'
import { targetedCacheControl, targetedFields } from './targeted-field.js'

/** A route's cache settings, as the config loader resolves them (`cache:` with durations in ms, sizes in bytes). */
export interface CachePolicyConfig {
  /**
   * Freshness in ms of a response whose upstream states none (no s-maxage, max-age or Expires): a configured heuristic
   * (RFC 9111 section 4.2.2). The upstream's own freshness always wins, and it never applies to no-cache responses.
   * null: only RFC 9111's heuristic (a tenth of the time since Last-Modified, else stale at once).
   */
  readonly ttlMs: number | null
  /** Larger bodies are not stored. */
  readonly maxObjectSizeBytes: number
  /**
   * How long past its freshness a stale entry is served at once while it is refreshed in the background. The
   * response's own stale-while-revalidate (RFC 5861 section 3) counts too: the longer one applies. 0: only the response's.
   */
  readonly staleWhileRevalidateMs: number
  /**
   * How long past its freshness a stale entry answers when the upstream fails (error, 5xx, open breaker). The
   * response's own stale-if-error (RFC 5861 section 4) counts too: the longer one applies. 0: only the response's.
   */
  readonly staleIfErrorMs: number
  /** Request header fields (lower-case names) whose values are part of the key, so each value gets its own entry. */
  readonly vary: readonly string[]
  /**
   * A response field (lower-case name) that, when present with a valid value, replaces Cache-Control and Expires for
   * this cache (RFC 9213); CDN-Cache-Control counts after it.
   * @default 'cdn-cache-control'
   */
  readonly targetedField?: string
}

/** An upstream response as the cache sees it: status and header fields (lower-case names). */
export interface CacheResponse {
  readonly status: number
  readonly headers: HeaderFields
}

/**
 * Why a request is not answered from, or its response not stored in, the cache: the `reason` label of
 * `cache_bypass_total`. A fixed set:
 * - `method`: not GET or HEAD; or a HEAD response (no body to store; a stored GET answers HEAD requests).
 * - `no-store`: Cache-Control: no-store from the client or the upstream (RFC 9111 sections 5.2.1.5, 5.2.2.5).
 * - `range`: a Range request; partial answers are not cached (RFC 9111 section 3.3 is not implemented).
 * - `precondition`: If-Match or If-Unmodified-Since, preconditions for the origin (RFC 9111 section 4.3.2).
 * - `private`: Cache-Control: private (RFC 9111 section 5.2.2.7).
 * - `authorization`: the request has Authorization and the response says neither public nor s-maxage (RFC 9111 section 3.5).
 * - `set-cookie`: the response sets a cookie; never shared.
 * - `vary`: `Vary: *`, which no later request matches (RFC 9111 section 4.1).
 * - `status`: a status that is not cacheable, or not without explicit freshness (RFC 9111 section 3; 206 is not cached).
 * - `too-large`: the body is over `maxObjectSizeBytes`.
 * - `expired`: nothing could ever be answered from it: stale on arrival with no stale window and no validator
 *   (max-age=0, an Expires in the past, no-cache without ETag or Last-Modified).
 */
export const BYPASS_REASONS = [
  'method', 'no-store', 'range', 'precondition', 'private', 'authorization', 'set-cookie', 'vary', 'status', 'too-large', 'expired'
] as const

export type BypassReason = typeof BYPASS_REASONS[number]
/** The reasons `requestCacheability` gives: the request alone decides them. */
export type RequestBypassReason = Extract<BypassReason, 'method' | 'no-store' | 'range' | 'precondition'>

export type RequestCacheability =
  /**
   * Look the request up. `noCache`: the client sent no-cache (or Pragma: no-cache without Cache-Control), so a stored
   * response may only answer after the upstream validated it (RFC 9111 sections 5.2.1.4, 5.4); `lookupDecision` knows.
   */
  | { readonly cacheable: true, readonly noCache: boolean }
  /** Forward it untouched and store nothing. */
  | { readonly cacheable: false, readonly reason: RequestBypassReason }

export type StoreDecision =
  /** Store `head` with the body under the entry key for `ttlMs` (more than 0). */
  | { readonly storable: true, readonly ttlMs: number, readonly head: EntryHead }
  | { readonly storable: false, readonly reason: BypassReason }

/**
 * The validators to send upstream to refresh an entry (RFC 9111 section 4.3.1). They replace the client's own
 * If-None-Match and If-Modified-Since, so a 304 is always about the stored entry (the gateway then answers the client
 * itself, see `conditionalMatch`). Empty when the entry has neither ETag nor Last-Modified: an unconditional fetch.
 */
export interface RevalidationHeaders {
  readonly 'if-none-match'?: string
  readonly 'if-modified-since'?: string
}

/** What a found entry can do for a request. */
export type LookupDecision =
  /** Fresh: answer from the entry (HIT) with `responseHeaders`. */
  | { readonly kind: 'fresh' }
  /**
   * Stale, within a stale-while-revalidate window: answer from the entry at once (STALE) and refresh it in the
   * background with `revalidationHeaders` (RFC 5861 section 3); no refresh is needed while the breaker is open.
   */
  | { readonly kind: 'stale-while-revalidate', readonly revalidationHeaders: RevalidationHeaders }
  /**
   * Ask the upstream first: a GET (also for a HEAD request, so a 200 can be stored) with `revalidationHeaders`. A 304
   * goes to `revalidated` (REVALIDATED), a 200 to `storability`. Should the upstream fail (no answer, 500, 502, 503,
   * 504, an open breaker) before `staleIfErrorUntil` (ms since the epoch), answer from the entry instead (STALE, RFC
   * 5861 section 4); null: a failure is answered as a failure. A fresh entry sent here by the client's own directives
   * may answer a failure too, unless the client said no-cache.
   */
  | { readonly kind: 'revalidate', readonly revalidationHeaders: RevalidationHeaders, readonly staleIfErrorUntil: number | null }
  /**
   * The entry cannot answer this request at all: `vary` (the response's Vary fields differ, RFC 9111 section 4.1),
   * `authorization` (the request has Authorization and the entry is not public, RFC 9111 section 3.5), `target` (it was
   * stored for another URL or host: a wrong key). Forward as on any miss.
   */
  | { readonly kind: 'miss', readonly reason: 'vary' | 'authorization' | 'target' }

/** The outcome of a 304 that validates an entry. */
export interface Refresh {
  /** The stored response with the 304's header fields (RFC 9111 section 3.2), stored now: answer the client with it. */
  readonly entry: CacheEntry
  /**
   * Store `entry` in place of the old one for `ttlMs`; or, when the 304 brought something that forbids storing
   * (no-store, private...), delete the old one: `entry` answers this request only.
   */
  readonly store: StoreDecision
}

/**
 * How long past its freshness an entry with a validator (ETag, Last-Modified) is kept, unless a stale window keeps it
 * longer: a 304 can refresh it instead of a full download. It is what makes no-cache entries worth storing.
 */
export const REVALIDATION_RETENTION_MS = 10 * 60_000

/** Directives as http-cache-semantics parses them: names, then the argument, or true without one. */
type Directives = Readonly<Record<string, string | true | undefined>>

/** Response fields a 304 does not replace: they describe the stored body (RFC 9111 section 3.2). */
const KEPT_ON_REFRESH = new Set(['content-length', 'content-encoding', 'content-range'])

/** Fields a 304 sent to the client carries (RFC 9110 section 15.4.5). */
const NOT_MODIFIED_FIELDS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary']

/**
 * http-cache-semantics reads the time only through `now()`, and every call into it runs inside `at()`, synchronously,
 * so this one variable is the clock of whichever call is running.
 */
let clock = 0

class ClockedPolicy extends CachePolicy {
  now (): number {
    return clock
  }
}

function at<T> (now: number, use: () => T): T {
  const outer = clock
  clock = now
  try {
    return use()
  } finally {
    clock = outer
  }
}

/**
 * Whether the cache may answer this request or store its response. Authorization is not decided here: an entry marked
 * public still answers it (see `lookupDecision`).
 */
export function requestCacheability (req: CacheRequest): RequestCacheability {
  if (req.method !== 'GET' && req.method !== 'HEAD') return { cacheable: false, reason: 'method' }
  // Most requests carry neither field: no directives to parse, and nothing allocated for them on every hit.
  const directives = req.headers['cache-control'] === undefined && req.headers.pragma === undefined ? NO_DIRECTIVES : requestDirectives(req.headers)
  if (directives.has('no-store')) return { cacheable: false, reason: 'no-store' } // RFC 9111 section 5.2.1.5
  // The cache stores whole responses only; serving a full 200 to a Range request would waste what Range saves.
  if (req.headers.range !== undefined) return { cacheable: false, reason: 'range' }
  // Preconditions about the origin's current state: a cache must not evaluate them (RFC 9111 section 4.3.2).
  if (req.headers['if-match'] !== undefined || req.headers['if-unmodified-since'] !== undefined) {
    return { cacheable: false, reason: 'precondition' }
  }
  return { cacheable: true, noCache: directives.has('no-cache') }
}

/**
 * Whether an upstream response to `req` may be stored, checked at its header time `now` (the entry's `storedAt`).
 * `bodySize` is the body's length once known; until then Content-Length stands in, and a streamed body must still be
 * cut off at `maxObjectSizeBytes`. Stricter than http-cache-semantics in three ways: Set-Cookie is never stored,
 * Authorization needs public or s-maxage (the library also takes must-revalidate, RFC 9111 section 3.5), and an
 * entry no request could ever use is not stored (`expired`).
 */
export function storability (req: CacheRequest, res: CacheResponse, cfg: CachePolicyConfig, now: number, bodySize?: number): StoreDecision {
  // HEAD answers carry no body; only GET responses are stored, and they answer HEAD too (RFC 9110 section 9.3.2).
  if (req.method !== 'GET') return { storable: false, reason: 'method' }
  if (requestDirectives(req.headers).has('no-store')) return { storable: false, reason: 'no-store' } // RFC 9111 section 5.2.1.5
  const headers = storedHeaders(res.headers)
  const size = bodySize ?? contentLength(headers)
  return storeDecision(req, res.status, headers, pathOf(req.url), size, cfg, now)
}

/**
 * What a stored entry can do for a request at `now`. Freshness is http-cache-semantics' (`maxAge()`: s-maxage, then
 * max-age, then Expires, then the Last-Modified heuristic) except that `ttlMs` replaces the heuristic, and age is its
 * `age()`. Its `evaluateRequest()` is not used: it revalidates must-revalidate responses even while fresh (RFC 9111
 * section 5.2.2.2 only forbids serving them stale), lets a GET entry answer no HEAD, and knows no configured windows.
 */
export function lookupDecision (entry: EntryHead, req: CacheRequest, cfg: CachePolicyConfig, now: number): LookupDecision {
  return at(now, () => {
    const mismatch = mismatchOf(entry, req)
    if (mismatch !== null) return { kind: 'miss', reason: mismatch }
    const policy = restore(entry, cfg)
    const response = entry.policy.rescc as Directives
    const client = requestDirectives(req.headers)
    const lifetime = lifetimeSeconds(policy, entry, cfg)
    const age = ageOf(policy)
    const noCache = client.has('no-cache') // RFC 9111 section 5.2.1.4
    const maxAge = deltaSeconds(client.get('max-age')) // RFC 9111 section 5.2.1.1
    const minFresh = deltaSeconds(client.get('min-fresh')) // RFC 9111 section 5.2.1.3
    const fresh = lifetime > age // RFC 9111 section 4.2
    if (fresh && !noCache && (maxAge === undefined || age <= maxAge) && (minFresh === undefined || lifetime - age >= minFresh)) {
      return { kind: 'fresh' }
    }
    const revalidationHeaders = validatorsFor(policy, entry, req)
    // A client that states what age it accepts does not want a stale answer (RFC 9111 section 5.2.1.1).
    const clientTakesStale = !noCache && maxAge === undefined && minFresh === undefined
    if (!fresh && clientTakesStale && age < lifetime + staleWindowSeconds(response, 'stale-while-revalidate', cfg.staleWhileRevalidateMs)) {
      return { kind: 'stale-while-revalidate', revalidationHeaders }
    }
    // A fresh entry may answer a failure even if its response forbids stale answers; the client's no-cache forbids both.
    const usableFor = noCache ? 0 : lifetime + staleWindowSeconds(response, 'stale-if-error', cfg.staleIfErrorMs) - age
    const staleIfErrorUntil = usableFor > 0 ? now + Math.round(usableFor * 1000) : null
    return { kind: 'revalidate', revalidationHeaders, staleIfErrorUntil }
  })
}

/**
 * The entry's current age in whole seconds, as the Age field states it (RFC 9111 section 5.1): the upstream's Age plus
 * the time since it was stored (RFC 9111 section 4.2.3 without the apparent age from Date, as http-cache-semantics
 * does: an origin whose clock is behind would make every response stale on arrival). Rounded down, so an answer the
 * cache deems fresh never states an age a downstream cache would deem stale.
 */
export function ageSeconds (entry: EntryHead, now: number): number {
  return at(now, () => Math.floor(ageOf(restore(entry, null))))
}

/** An entry's clock, computed once: `lookupDecision` and `ageSeconds` without restoring the policy per request. */
export interface EntryFreshness {
  /** Its age in seconds when stored (the upstream's Age): its age at `t` is this plus the seconds since `storedAt`. */
  readonly ageAtStore: number
  /**
   * Until when (ms since the epoch) it is fresh for a request that brings nothing of its own to decide (no
   * Cache-Control, Pragma or Authorization) when it has no Vary: then `lookupDecision` would say `fresh` before this.
   * -Infinity when it varies, or is never fresh.
   */
  readonly plainFreshUntil: number
}

/** See EntryFreshness; age and freshness as `lookupDecision` computes them, at the time it was stored. */
export function entryFreshness (entry: EntryHead, cfg: CachePolicyConfig): EntryFreshness {
  return at(entry.storedAt, () => {
    const policy = restore(entry, cfg)
    const ageAtStore = ageOf(policy)
    const lifetime = lifetimeSeconds(policy, entry, cfg)
    const varies = varyNames(entry.headers).length > 0
    return { ageAtStore, plainFreshUntil: varies || lifetime <= ageAtStore ? -Infinity : entry.storedAt + (lifetime - ageAtStore) * 1000 }
  })
}

/** `ageSeconds` from the entry's freshness computed once: the same rule, without restoring the policy per answer. */
export function ageFrom (freshness: EntryFreshness, entry: EntryHead, now: number): number {
  return Math.floor(freshness.ageAtStore + Math.max(0, now - entry.storedAt) / 1000)
}

/** Whether `lookupDecision` needs nothing of `req` but the entry's freshness: no Cache-Control, Pragma or Authorization. */
export function isPlainRequest (req: CacheRequest): boolean {
  const headers = req.headers
  return headers['cache-control'] === undefined && headers.pragma === undefined && headers.authorization === undefined
}

/**
 * The header fields of an answer from the entry: the stored ones (origin Date kept, RFC 9110 section 6.6.1) and Age
 * (RFC 9111 section 4: a cache must send it). http-cache-semantics' `responseHeaders()` is not used: it overwrites Date.
 */
export function responseHeaders (entry: EntryHead, now: number): Record<string, string | string[]> {
  return { ...entry.headers, age: String(ageSeconds(entry, now)) }
}

/**
 * The header fields of a 304 answered from the entry (RFC 9110 section 15.4.5): those a 200 would carry among
 * Cache-Control, Content-Location, Date, ETag, Expires and Vary, Last-Modified when there is no ETag, and Age.
 */
export function notModifiedHeaders (entry: EntryHead, now: number): Record<string, string> {
  const headers: Record<string, string> = {}
  const names = entry.headers.etag === undefined ? [...NOT_MODIFIED_FIELDS, 'last-modified'] : NOT_MODIFIED_FIELDS
  for (const name of names) {
    const value = entry.headers[name]
    if (typeof value === 'string') headers[name] = value
  }
  headers.age = String(ageSeconds(entry, now))
  return headers
}

/**
 * Whether the client's own If-None-Match or If-Modified-Since matches the entry, so the gateway answers 304 itself
 * (RFC 9111 section 4.3.2). If-None-Match uses the weak comparison and, when present, If-Modified-Since is ignored
 * (RFC 9110 sections 13.1.2, 13.1.3). Without Last-Modified, the stored Date (else `storedAt`) is the modification
 * time (RFC 9111 section 4.3.2). Only 2xx entries match (RFC 9110 section 13.2.1).
 */
export function conditionalMatch (req: CacheRequest, entry: EntryHead): boolean {
  if (entry.status < 200 || entry.status > 299) return false
  const ifNoneMatch = fieldValue(req.headers, 'if-none-match')
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() === '*') return true
    const etag = entry.headers.etag
    if (typeof etag !== 'string') return false
    const stored = opaqueTag(etag.trim())
    return (ifNoneMatch.match(/(?:W\/)?"[^"]*"/g) ?? []).some((tag) => opaqueTag(tag) === stored)
  }
  const ifModifiedSince = fieldValue(req.headers, 'if-modified-since')
  if (ifModifiedSince === undefined) return false
  const since = Date.parse(ifModifiedSince)
  if (Number.isNaN(since)) return false // not an HTTP-date: ignored (RFC 9110 section 13.1.3)
  const modified = [entry.headers['last-modified'], entry.headers.date]
    .map((value) => typeof value === 'string' ? Date.parse(value) : NaN)
    .find((time) => !Number.isNaN(time)) ?? entry.storedAt
  return modified <= since
}

/**
 * The entry after a 304 from the upstream at `now`, or null when the 304 does not validate it (its validator differs,
 * or it has none while the entry has one: RFC 9111 section 4.3.4, http-cache-semantics' `revalidatedPolicy`): then
 * neither serve nor refresh the entry, fetch again without validators. The 304's fields replace and add to the stored
 * ones but those describing the body (RFC 9111 section 3.2); the stored Age goes, as the 304 is a new response.
 * `revalidatedPolicy` only updates fields the stored response already had, so the merge is done here.
 */
export function revalidated (entry: CacheEntry, req: CacheRequest, res304: CacheResponse, cfg: CachePolicyConfig, now: number): Refresh | null {
  const update = storedHeaders(res304.headers)
  const { matches } = at(now, () => restore(entry, cfg).revalidatedPolicy(
    libraryRequest(req, varyNames(entry.headers)), { status: 304, headers: libraryHeaders(update, cfg) }
  ))
  if (!matches) return null
  const headers: Record<string, string | string[]> = { ...entry.headers }
  delete headers.age
  for (const name in update) {
    if (!KEPT_ON_REFRESH.has(name)) headers[name] = update[name] as string | string[]
  }
  const store = storeDecision(req, entry.status, headers, entry.path, entry.body.length, cfg, now)
  const head = store.storable ? store.head : assess(req, entry.status, headers, entry.path, cfg, now).head
  return { entry: { ...head, body: entry.body }, store }
}

/**
 * How long to keep an entry, from `now`, in ms: its remaining freshness plus the longest time it stays of use once stale
 * (a stale-while-revalidate or stale-if-error window, or REVALIDATION_RETENTION_MS when it has a validator), so the
 * store evicts what can no longer answer. 0 for an entry that never could.
 */
export function storeTtlMs (entry: EntryHead, cfg: CachePolicyConfig, now: number): number {
  return at(now, () => {
    const policy = restore(entry, cfg)
    const response = entry.policy.rescc as Directives
    const hasValidator = entry.headers.etag !== undefined || entry.headers['last-modified'] !== undefined
    const staleUse = Math.max(
      staleWindowSeconds(response, 'stale-while-revalidate', cfg.staleWhileRevalidateMs),
      staleWindowSeconds(response, 'stale-if-error', cfg.staleIfErrorMs),
      hasValidator ? REVALIDATION_RETENTION_MS / 1000 : 0
    )
    return Math.max(0, Math.ceil((lifetimeSeconds(policy, entry, cfg) - ageOf(policy) + staleUse) * 1000))
  })
}

/** The response checks, shared by a first store and a refresh (which keeps the stored body's size). */
function storeDecision (
  req: CacheRequest, status: number, headers: StoredHeaders, path: string, size: number | undefined, cfg: CachePolicyConfig, now: number
): StoreDecision {
  const { head, storable } = assess(req, status, headers, path, cfg, now)
  const response = head.policy.rescc as Directives
  if (response['no-store']) return { storable: false, reason: 'no-store' } // RFC 9111 section 5.2.2.5
  if (response.private) return { storable: false, reason: 'private' } // RFC 9111 section 5.2.2.7
  // RFC 9111 section 3.5; must-revalidate, which the section also lists, is not enough here.
  if (req.headers.authorization !== undefined && !response.public && !response['s-maxage']) return { storable: false, reason: 'authorization' }
  if (headers['set-cookie'] !== undefined) return { storable: false, reason: 'set-cookie' }
  if (varyNames(headers).includes('*')) return { storable: false, reason: 'vary' } // RFC 9111 section 4.1
  // What is left of the library's storable(): a status it understands, with explicit freshness unless cacheable by default.
  if (!storable) return { storable: false, reason: 'status' } // RFC 9111 section 3
  if (size !== undefined && size > cfg.maxObjectSizeBytes) return { storable: false, reason: 'too-large' }
  const ttlMs = storeTtlMs(head, cfg, now)
  if (ttlMs === 0) return { storable: false, reason: 'expired' }
  return { storable: true, ttlMs, head }
}

/** A new http-cache-semantics policy for a response to `req`, as an entry head, and its verdict on storing it. */
function assess (
  req: CacheRequest, status: number, headers: StoredHeaders, path: string, cfg: CachePolicyConfig, now: number
): { head: EntryHead, storable: boolean } {
  return at(now, () => {
    const policy = new ClockedPolicy(libraryRequest(req, varyNames(headers)), { status, headers: libraryHeaders(headers, cfg) }, { shared: true })
    const { st, resh, ...state } = policy.toObject()
    return { head: { status, headers, storedAt: now, path, policy: state }, storable: policy.storable() }
  })
}

/** The entry's policy as http-cache-semantics knows it (null `cfg`: only its age is asked); call inside `at()`. */
function restore (entry: EntryHead, cfg: CachePolicyConfig | null): CachePolicy {
  return ClockedPolicy.fromObject({ ...entry.policy, st: entry.status, resh: libraryHeaders(entry.headers, cfg) })
}

/**
 * The request as http-cache-semantics is shown it. Its method is GET (a stored GET answers HEAD; the library would not
 * match them), its URL the normalized target and its host lower-cased, as in the key. It keeps every request field of a
 * response with Vary in `toObject()`, cookies and credentials included, so only what it needs is passed: Cache-Control
 * and Pragma, and the Vary-named fields and Authorization as SHA-256 fingerprints, which compare the same way.
 */
function libraryRequest (req: CacheRequest, vary: readonly string[]): CachePolicy.Request {
  const headers: Record<string, string> = {}
  for (const name of vary) {
    // Normalised as in the variant's key, so `en, de` matches `en,de` (RFC 9111 section 4.1).
    const value = varyValue(req.headers, name)
    if (value !== undefined) headers[name] = fingerprint(value)
  }
  const authorization = fieldValue(req.headers, 'authorization')
  if (authorization !== undefined) headers.authorization = fingerprint(authorization)
  headers.host = hostOf(req.headers)
  const cacheControl = fieldValue(req.headers, 'cache-control')
  if (cacheControl !== undefined) headers['cache-control'] = lowerDirectiveNames(cacheControl)
  const pragma = fieldValue(req.headers, 'pragma')
  if (pragma !== undefined) headers.pragma = pragma.toLowerCase()
  return { method: 'GET', url: normalizeTarget(req.url), headers }
}

/**
 * The response fields as http-cache-semantics is shown them; call inside `at()`. A valid targeted field (RFC 9213
 * section 2.2) stands in for Cache-Control, and Expires and Pragma go. Cache-Control directive names and Pragma are
 * lower-cased, since the library matches them case-sensitively (RFC 9111 section 5.2 says they are not) and would miss
 * `Private` or `No-Store`. Expires is rewritten as the IMF-fixdate it names, or as a value Date.parse cannot read when
 * it is not an HTTP-date: the library's Date.parse takes `2025-01-01` or `... UTC`, RFC 9111 section 5.3 says such a
 * value means already expired. `cfg` null: no targeted field (the policy's age alone is asked).
 */
function libraryHeaders (headers: StoredHeaders, cfg: CachePolicyConfig | null): CachePolicy.Headers {
  const targeted = cfg === null ? undefined : targetedCacheControl(headers, targetedFields(cfg.targetedField))
  const cacheControl = targeted ?? headers['cache-control']
  const pragma = headers.pragma
  const expires = headers.expires
  if (typeof cacheControl !== 'string' && typeof pragma !== 'string' && expires === undefined) return headers
  const view = { ...headers }
  if (typeof cacheControl === 'string') view['cache-control'] = lowerDirectiveNames(cacheControl)
  if (targeted !== undefined) {
    delete view.expires
    delete view.pragma
    return view
  }
  if (typeof pragma === 'string') view.pragma = pragma.toLowerCase()
  if (expires !== undefined) {
    const time = parseHttpDate(String(expires), clock)
    view.expires = time === null ? 'invalid' : new Date(time).toUTCString()
  }
  return view
}

/** Why the entry cannot answer this request at all, or null; call inside `at()`. */
function mismatchOf (entry: EntryHead, req: CacheRequest): 'vary' | 'authorization' | 'target' | null {
  const { u, h, reqh, rescc } = entry.policy
  if (u !== normalizeTarget(req.url) || h !== hostOf(req.headers)) return 'target'
  const vary = varyNames(entry.headers)
  if (vary.length > 0) {
    // Compared as the library would (RFC 9111 section 4.1), on the same fingerprints it was given when storing.
    const presented = libraryRequest(req, vary).headers
    if (vary.some((name) => name === '*' || presented[name] !== reqh?.[name])) return 'vary'
  }
  const response = rescc as Directives
  if (req.headers.authorization !== undefined && !response.public && !response['s-maxage']) return 'authorization' // RFC 9111 section 3.5
  return null
}

/** The entry's validators for a conditional request, from the library's `revalidationHeaders()`; call inside `at()`. */
function validatorsFor (policy: CachePolicy, entry: EntryHead, req: CacheRequest): RevalidationHeaders {
  const all = policy.revalidationHeaders(libraryRequest(req, varyNames(entry.headers)))
  const ifNoneMatch = all['if-none-match']
  const ifModifiedSince = all['if-modified-since']
  return {
    ...(typeof ifNoneMatch === 'string' ? { 'if-none-match': ifNoneMatch } : {}),
    ...(typeof ifModifiedSince === 'string' ? { 'if-modified-since': ifModifiedSince } : {})
  }
}

/** Freshness lifetime in seconds (RFC 9111 section 4.2.1): the library's, with `ttlMs` in place of its heuristic. */
function lifetimeSeconds (policy: CachePolicy, entry: EntryHead, cfg: CachePolicyConfig): number {
  const response = entry.policy.rescc as Directives
  // The library's own test for explicit freshness; no-cache and proxy-revalidate mean "never fresh" to it, and stay so.
  // A valid targeted field shuts Expires out (RFC 9213 section 2.2); an invalid Expires still states one: in the past.
  const expires = entry.headers.expires !== undefined && targetedCacheControl(entry.headers, targetedFields(cfg.targetedField)) === undefined
  const explicit = [response['s-maxage'], response['max-age'], expires].some(Boolean)
  if (cfg.ttlMs !== null && !explicit && !response['no-cache'] && !response['proxy-revalidate']) return cfg.ttlMs / 1000
  return policy.maxAge()
}

/** Current age in seconds; never negative, even if the clock went back. Call inside `at()`. */
function ageOf (policy: CachePolicy): number {
  return Math.max(0, policy.age())
}

/**
 * How long past its freshness the entry may be served stale for one purpose, in seconds: the longer of the response's
 * own directive and the configured window. no-cache, must-revalidate and proxy-revalidate forbid any stale answer
 * (RFC 9111 sections 4.2.4, 5.2.2.2, 5.2.2.8). s-maxage implies proxy-revalidate (RFC 9111 section 5.2.2.10), so it
 * shuts out the configured window but not a stale-* directive its own response sends beside it (RFC 5861).
 */
function staleWindowSeconds (response: Directives, directive: 'stale-while-revalidate' | 'stale-if-error', configuredMs: number): number {
  if (response['no-cache'] || response['must-revalidate'] || response['proxy-revalidate']) return 0
  const own = deltaSeconds(response[directive]) ?? 0
  return Math.max(own, response['s-maxage'] ? 0 : configuredMs / 1000)
}

/** Request Cache-Control directives, names lower-cased (RFC 9111 section 5.2); Pragma: no-cache counts without it (section 5.4). */
const NO_DIRECTIVES: ReadonlyMap<string, string | true> = new Map()

function requestDirectives (headers: HeaderFields): Map<string, string | true> {
  const directives = new Map<string, string | true>()
  const cacheControl = fieldValue(headers, 'cache-control')
  if (cacheControl === undefined) {
    if (fieldValue(headers, 'pragma')?.toLowerCase().includes('no-cache') === true) directives.set('no-cache', true)
    return directives
  }
  for (const part of cacheControl.split(',')) {
    const equals = part.indexOf('=')
    const name = (equals === -1 ? part : part.slice(0, equals)).trim().toLowerCase()
    if (name !== '') directives.set(name, equals === -1 ? true : part.slice(equals + 1).trim().replace(/^"|"$/g, ''))
  }
  return directives
}

/** A delta-seconds argument (RFC 9111 section 1.2.2); anything else (missing, `max-age` alone, `-1`, `1.5`) counts as absent. */
function deltaSeconds (argument: string | true | undefined): number | undefined {
  return typeof argument === 'string' && /^\d+$/.test(argument) ? Number(argument) : undefined
}

function lowerDirectiveNames (value: string): string {
  return value.split(',').map((part) => {
    const equals = part.indexOf('=')
    return equals === -1 ? part.toLowerCase() : part.slice(0, equals).toLowerCase() + part.slice(equals)
  }).join(',')
}

/** The field names a stored response's Vary lists, lower-cased (stored fields are already joined into one line). */
export function varyNames (headers: StoredHeaders): string[] {
  const vary = headers.vary
  if (typeof vary !== 'string') return []
  return vary.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== '')
}

function contentLength (headers: StoredHeaders): number | undefined {
  const value = headers['content-length']
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined
}

function opaqueTag (tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

function fingerprint (value: string): string {
  return createHash('sha256').update(value).digest('base64url')
}
