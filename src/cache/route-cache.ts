// One route's cache on the request path: lookups, misses collapsed and stored, revalidation, stale answers in place of
// failures. It reaches the upstream only through the narrow Upstream interface (src/core/upstream.ts).
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { CacheConfig, RouteConfig } from '../config/index.js'
import {
  gatewayError, type CacheStatus, type CapturedResponse, type Downstream, type ForwardEnd, type ForwardOptions, type Upstream
} from '../core/index.js'
import { decodeEntry, type CacheEntry } from './entry.js'
import type { CacheEvents, StaleReason } from './events.js'
import { cacheKeys, fieldValue, hostOf, invalidationKey, routePrefix, type CacheKeys, type CacheRequest } from './key.js'
import {
  ageFrom, conditionalMatch, entryFreshness, isPlainRequest, lookupDecision, notModifiedHeaders, requestCacheability, revalidated,
  storability, type EntryFreshness, type RevalidationHeaders
} from './policy.js'
import type { CacheStore } from './store.js'
import { decodeVariantIndex, VariantStore, type FoundValue } from './variants.js'

/** What a lookup found. */
export type CacheLookup =
  /** Past the cache: the request's own reason (no-store, range...) or the store's (`store-error`). */
  | { readonly kind: 'bypass', readonly reason: string }
  | { readonly kind: 'miss', readonly keys: CacheKeys }
  | { readonly kind: 'fresh', readonly keys: CacheKeys, readonly entry: CacheEntry }
  | { readonly kind: 'stale-while-revalidate', readonly keys: CacheKeys, readonly entry: CacheEntry, readonly validators: RevalidationHeaders }
  | {
    readonly kind: 'revalidate'
    readonly keys: CacheKeys
    readonly entry: CacheEntry
    readonly validators: RevalidationHeaders
    /** Until when (ms since the epoch) the entry may stand in for a failed upstream; null: never. */
    readonly staleIfErrorUntil: number | null
  }

export interface RouteCacheOptions {
  readonly store: CacheStore
  readonly keyPrefix: string
  /** Where the cache publishes its outcomes and failures. */
  readonly events: CacheEvents
  /** @default Date.now */
  readonly now?: () => number
}

/**
 * How long an invalidation marker lives: it must outlast the entries stored before it. An entry found older than
 * a marker is deleted on the spot, so only an entry nobody asks for within this time can outlive it.
 */
export const INVALIDATION_TTL_MS = 24 * 3_600_000

/**
 * A miss is fetched without the client's validators, so the answer is a 200 the cache can store; the client's
 * conditional is then answered from it (nginx does the same). A revalidation sends the entry's validators instead.
 */
const UNCONDITIONAL: Readonly<Record<string, null>> = { 'if-none-match': null, 'if-modified-since': null }

const NO_OPTIONS: ForwardOptions = {}

/**
 * Keys computed for this many distinct targets are remembered (two SHA-256 each), and the last entry decoded for as
 * many keys; past it, a memo starts over.
 */
const KEY_MEMO_SIZE = 10_000

/** What every answer from an entry needs, computed once per entry. */
interface AnswerParts {
  readonly freshness: EntryFreshness
  /** The stored header fields as writeHead's flat list, without Age and Content-Length (set per answer). */
  readonly fields: readonly string[]
}

/** How often a request that found another instance fetching its entry looks for the result. */
const LOCK_POLL_MS = 20

/** Methods whose success invalidates what is cached for their path (RFC 9111 section 4.4). */
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/**
 * One route's cache, the pipeline's cache stage (`serve`): a hit costs no more than the answer itself. What needs
 * the upstream (a miss, a revalidation) goes through it, where concurrent misses on one key share one upstream
 * request: in this process by a shared promise, across instances by a short store lock.
 */
export class RouteCache {
  readonly route: RouteConfig
  readonly #config: CacheConfig
  readonly #store: CacheStore
  /** The store seen through each URL's variants (responses with Vary): lookups and writes of entries go through it. */
  readonly #variants: VariantStore
  readonly #keyPrefix: string
  readonly #events: CacheEvents
  readonly #now: () => number
  /** Misses being fetched in this process, by entry key: what they stored, or null. */
  readonly #inflight = new Map<string, Promise<CacheEntry | null>>()
  /** Entry keys refreshed in the background now: one refresh per key at a time. */
  readonly #refreshing = new Set<string>()
  /**
   * The last entry decoded for each key, with the bytes it came from: a hit whose bytes are the same (the memory
   * store's very Buffer, or Redis's copy of it) decodes nothing and restores no policy. Bounded like the key memo.
   */
  readonly #decoded = new Map<string, { readonly value: Buffer, readonly entry: CacheEntry | null }>()
  readonly #parts = new WeakMap<CacheEntry, AnswerParts>()
  readonly #keys = new Map<string, CacheKeys>()

  constructor (route: RouteConfig, options: RouteCacheOptions) {
    if (route.cache === null) throw new Error(`expected route ${route.id} to have a cache block`)
    this.route = route
    this.#config = route.cache
    this.#store = options.store
    this.#keyPrefix = options.keyPrefix
    this.#events = options.events
    this.#now = options.now ?? Date.now
    this.#variants = new VariantStore(options.store, { maxVariants: route.cache.maxVariants, now: this.#now })
  }

  /** Whether `req` is looked up at all: GET and HEAD. Other methods pass by (and may invalidate, see `forward`). */
  looksUp (req: IncomingMessage): boolean {
    return req.method === 'GET' || req.method === 'HEAD'
  }

  /**
   * What the store holds for `req`, when an in-process store can say at once (see CacheStore.peek); undefined when
   * `lookup` must ask.
   */
  lookupNow (req: IncomingMessage): CacheLookup | undefined {
    const target = this.#target(req)
    if ('kind' in target) return target
    const found = this.#variants.peek(target.keys, target.request.headers)
    return found === undefined ? undefined : this.#found(target.request, found.keys, [found.value, found.marker])
  }

  /** What the store holds for `req`. Never rejects: a failing store is a bypass. */
  async lookup (req: IncomingMessage): Promise<CacheLookup> {
    const target = this.#target(req)
    if ('kind' in target) return target
    let found: FoundValue
    try {
      found = await this.#variants.get(target.keys, target.request.headers)
    } catch (err) {
      this.#failed(err)
      return { kind: 'bypass', reason: 'store-error' }
    }
    return this.#found(target.request, found.keys, [found.value, found.marker])
  }

  /** The request and its keys, or the bypass it asks for itself (no-store, Range...). */
  #target (req: IncomingMessage): { request: CacheRequest, keys: CacheKeys } | CacheLookup & { kind: 'bypass' } {
    const request = asCacheRequest(req)
    const cacheability = requestCacheability(request)
    if (!cacheability.cacheable) return { kind: 'bypass', reason: cacheability.reason }
    return { request, keys: this.#keysFor(request) }
  }

  /** What an entry (or its variant for the request) and its path's invalidation marker, as read, can do for the request. */
  #found (request: CacheRequest, keys: CacheKeys, values: Array<Buffer | null>): CacheLookup {
    const [value, marker] = values
    const entry = value === null || value === undefined ? null : this.#decode(keys.entry, value)
    if (entry === null) return { kind: 'miss', keys }
    if (marker !== null && marker !== undefined && Number(marker.toString()) >= entry.storedAt) {
      // Invalidated by a write since it was stored: gone for good.
      this.#store.delete([keys.entry]).catch((err: unknown) => { this.#failed(err) })
      return { kind: 'miss', keys }
    }
    const now = this.#now()
    // The common hit, decided without restoring the policy: a plain request and an entry without Vary, still fresh.
    if (isPlainRequest(request) && now < this.#partsOf(entry).freshness.plainFreshUntil) return { kind: 'fresh', keys, entry }
    const decision = lookupDecision(entry, request, this.#config, now)
    switch (decision.kind) {
      case 'fresh': return { kind: 'fresh', keys, entry }
      case 'stale-while-revalidate': return { kind: 'stale-while-revalidate', keys, entry, validators: decision.revalidationHeaders }
      case 'revalidate':
        return { kind: 'revalidate', keys, entry, validators: decision.revalidationHeaders, staleIfErrorUntil: decision.staleIfErrorUntil }
      case 'miss': return { kind: 'miss', keys }
    }
  }

  /**
   * The cache stage of a request on this route. GET and HEAD are looked up: a fresh entry answers (HIT), a stale one
   * within stale-while-revalidate answers and is refreshed in the background (STALE); otherwise the upstream is
   * asked, unless its breaker refuses (a stale entry within stale-if-error stands in: STALE), a miss through the
   * collapsing and storing path, a stale entry through revalidation. A write goes to the upstream and invalidates.
   * What the cache does not answer ends in `done`, as the upstream's own forward would.
   */
  serve (client: Downstream, upstream: Upstream, done: (end: ForwardEnd) => void): void {
    const req = client.req
    if (!this.looksUp(req)) {
      if (!UNSAFE_METHODS.has(req.method as string)) {
        upstream.forward(client, NO_OPTIONS, done)
        return
      }
      upstream.forward(client, NO_OPTIONS, (end) => {
        // RFC 9111 section 4.4: a non-error answer to an unsafe method invalidates the target URI.
        if (end.kind === 'relayed' && end.status < 400) this.#invalidate(req, end.headers)
        done(end)
      })
      return
    }
    // An in-process store answers at once: no promise hop between the request and its HIT.
    const known = this.lookupNow(req)
    if (known !== undefined) {
      this.#looked(client, upstream, known, done)
      return
    }
    this.lookup(req).then((lookup) => { this.#looked(client, upstream, lookup, done) }, (err: unknown) => {
      done({ kind: 'failed', error: internalError(err), answered: false })
    })
  }

  #looked (client: Downstream, upstream: Upstream, lookup: CacheLookup, done: (end: ForwardEnd) => void): void {
    switch (lookup.kind) {
      case 'fresh':
        this.#answer(client, lookup.entry, 'HIT')
        return
      case 'stale-while-revalidate':
        this.#refresh(client, lookup, upstream)
        this.#answer(client, lookup.entry, 'STALE', 'swr')
        return
      case 'bypass':
        this.#served('BYPASS', lookup.reason)
        client.cacheStatus = 'BYPASS'
        upstream.forward(client, NO_OPTIONS, done)
        return
    }
    // Refused at once while the breaker is open, before any lock or collapsing.
    const retryAfterMs = upstream.refusal()
    if (retryAfterMs !== null) {
      if (lookup.kind === 'revalidate' && this.#usableForFailure(lookup)) this.#answer(client, lookup.entry, 'STALE', 'breaker')
      else done({ kind: 'refused', retryAfterMs, retried: false })
      return
    }
    if (lookup.kind === 'revalidate') this.#fetch(client, upstream, lookup, null, done)
    else this.#collapse(client, upstream, lookup, done)
  }

  /** Concurrent misses on one key wait for the first one's answer instead of asking the upstream too. */
  #collapse (client: Downstream, upstream: Upstream, lookup: CacheLookup & { kind: 'miss' }, done: (end: ForwardEnd) => void): void {
    const key = lookup.keys.entry
    const pending = this.#inflight.get(key)
    if (pending !== undefined) {
      // The promise only resolves (see `stored` below); what throws in here is the gateway's own failure.
      pending.then((entry) => {
        if (entry !== null && this.#answers(entry, client.req)) this.#answer(client, entry, 'HIT')
        else this.#fetch(client, upstream, lookup, null, done)
      }).catch((err: unknown) => { done({ kind: 'failed', error: internalError(err), answered: false }) })
      return
    }
    let settle: (entry: CacheEntry | null) => void = () => {}
    this.#inflight.set(key, new Promise((resolve) => { settle = resolve }))
    const stored = (entry: CacheEntry | null): void => {
      this.#inflight.delete(key)
      settle(entry)
      this.#store.unlock(lookup.keys.lock).catch(() => {})
    }
    this.#lockOrAwait(client.req, lookup.keys).then((entry) => {
      if (entry === null) {
        this.#fetch(client, upstream, lookup, stored, done)
        return
      }
      this.#answer(client, entry, 'HIT')
      stored(entry)
    }, (err: unknown) => {
      stored(null)
      done({ kind: 'failed', error: internalError(err), answered: false })
    })
  }

  /**
   * Takes the key's lock across instances; when another instance holds it, waits (polling, up to the route's
   * timeout) for the entry it is fetching. Returns that entry, or null when this request must fetch: also once the
   * URL turns out to vary and this request's variant is not stored (the other instance fetched another variant).
   */
  async #lockOrAwait (req: IncomingMessage, keys: CacheKeys): Promise<CacheEntry | null> {
    const timeoutMs = this.route.timeoutMs
    let varies = false
    const stored = async (): Promise<CacheEntry | null> => {
      const found = await this.#variants.get(keys, req.headers)
      varies = found.keys.entry !== keys.entry
      const entry = found.value === null ? null : this.#decode(found.keys.entry, found.value)
      return entry !== null && this.#answers(entry, req) ? entry : null
    }
    try {
      // Looked up again once the lock is held: a miss looked up before another request stored the entry arrives here after it.
      if (await this.#store.lock(keys.lock, timeoutMs)) return await stored()
      const deadline = Date.now() + timeoutMs
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS))
        const entry = await stored()
        if (entry !== null || varies) return entry
      }
    } catch (err) {
      this.#failed(err)
    }
    return null
  }

  /**
   * Asks the upstream: conditionally when a stale entry has validators (a 304 that selects it refreshes it:
   * REVALIDATED; one that selects nothing is followed by an unconditional request), storing what may be stored; a
   * failure within the entry's stale-if-error window is answered from it (STALE). `stored` hears what was stored.
   */
  #fetch (
    client: Downstream, upstream: Upstream, lookup: CacheLookup & { kind: 'miss' | 'revalidate' },
    stored: ((entry: CacheEntry | null) => void) | null, done: (end: ForwardEnd) => void
  ): void {
    const stale = lookup.kind === 'revalidate' ? lookup : null
    const conditional = stale !== null && Object.keys(stale.validators).length > 0
    const finish = (entry: CacheEntry | null): void => { stored?.(entry) }
    client.cacheStatus = 'MISS'
    upstream.forward(client, {
      headers: stale === null ? UNCONDITIONAL : { ...UNCONDITIONAL, ...stale.validators },
      captureUpToBytes: this.#config.maxObjectSizeBytes,
      // A 304 to a request without validators is the upstream's own doing: relayed as it is, never looped on.
      holdBack: (status) => stale !== null && ((status === 304 && conditional) || (status >= 500 && this.#usableForFailure(stale)))
    }, (end) => {
      switch (end.kind) {
        case 'relayed':
          this.#served('MISS')
          if (end.captured === null) finish(null)
          else this.#store304OrNew(client.req, lookup.keys, end.captured).then(finish, () => { finish(null) })
          done(end)
          return
        case 'held':
          this.#held(client, upstream, stale as CacheLookup & { kind: 'revalidate' }, end, stored, finish, done)
          return
        case 'failed':
        case 'refused':
          finish(null)
          if (!(end.kind === 'failed' && end.answered) && stale !== null && this.#usableForFailure(stale)) {
            this.#answer(client, stale.entry, 'STALE', end.kind === 'refused' ? 'breaker' : 'error')
            return
          }
          done(end)
          return
        case 'abandoned':
          finish(null)
          done(end)
      }
    })
  }

  /** An answer held back from a revalidation: a 304 refreshes the entry (REVALIDATED), a 5xx is answered from it (STALE). */
  #held (
    client: Downstream, upstream: Upstream, stale: CacheLookup & { kind: 'revalidate' }, end: ForwardEnd & { kind: 'held' },
    stored: ((entry: CacheEntry | null) => void) | null, finish: (entry: CacheEntry | null) => void, done: (end: ForwardEnd) => void
  ): void {
    if (end.status !== 304) {
      this.#answer(client, stale.entry, 'STALE', 'error')
      finish(null)
      return
    }
    this.#store304OrNew(client.req, stale.keys, { status: 304, headers: end.headers, body: Buffer.alloc(0) }, stale.entry).then((refreshed) => {
      if (refreshed === null) {
        // A 304 that selects no stored response: ask again without validators and store that (RFC 9111 section 4.3.4).
        this.#fetch(client, upstream, { ...stale, validators: {} }, stored, done)
        return
      }
      this.#answer(client, refreshed, 'REVALIDATED')
      finish(refreshed)
    }, (err: unknown) => {
      finish(null)
      done({ kind: 'failed', error: internalError(err), answered: false })
    })
  }

  /** Stores a fetched answer (a 304 refreshes `previous`); resolves with the entry now stored, or null. */
  async #store304OrNew (req: IncomingMessage, keys: CacheKeys, answer: CapturedResponse, previous?: CacheEntry): Promise<CacheEntry | null> {
    const request = asCacheRequest(req)
    const now = this.#now()
    let entry: CacheEntry
    let ttlMs: number
    if (answer.status === 304 && previous !== undefined) {
      const refresh = revalidated(previous, request, { status: 304, headers: answer.headers }, this.#config, now)
      if (refresh === null) return null
      if (!refresh.store.storable) {
        await this.#store.delete([keys.entry]).catch((err: unknown) => { this.#failed(err) })
        return refresh.entry
      }
      entry = refresh.entry
      ttlMs = refresh.store.ttlMs
    } else {
      const decision = storability(request, { status: answer.status, headers: answer.headers }, this.#config, now, answer.body.length)
      if (!decision.storable) {
        this.#served('BYPASS', decision.reason)
        return null
      }
      entry = { ...decision.head, body: answer.body }
      ttlMs = decision.ttlMs
    }
    try {
      await this.#variants.set(keys, req.headers, entry, ttlMs)
    } catch (err) {
      this.#failed(err)
    }
    return entry
  }

  /** Refreshes a stale entry in the background, once per key at a time in this process and, by the lock, across instances. */
  #refresh (client: Downstream, lookup: CacheLookup & { kind: 'stale-while-revalidate' }, upstream: Upstream): void {
    const { keys, entry, validators } = lookup
    if (this.#refreshing.has(keys.entry)) return
    this.#refreshing.add(keys.entry)
    const req = client.req
    const maxBytes = this.#config.maxObjectSizeBytes
    const run = async (): Promise<void> => {
      if (!await this.#store.lock(keys.lock, this.route.timeoutMs)) return
      try {
        const answer = await upstream.fetch(client, { ...UNCONDITIONAL, ...validators }, maxBytes)
        const stored = await this.#store304OrNew(req, keys, answer, entry)
        if (stored === null && answer.status === 304 && Object.keys(validators).length > 0) {
          // The 304 selects no stored response (RFC 9111 section 4.3.4): fetch it whole.
          await this.#store304OrNew(req, keys, await upstream.fetch(client, UNCONDITIONAL, maxBytes))
        }
      } finally {
        await this.#store.unlock(keys.lock)
      }
    }
    run().catch((err: unknown) => { this.#failed(err) })
      .finally(() => { this.#refreshing.delete(keys.entry) })
  }

  /**
   * Marks the target URI invalidated, and the URIs the answer's Location and Content-Location name when they share
   * its origin (RFC 9111 section 4.4; another origin's must not be touched, so a write cannot purge what it does not
   * own). The origin is told by host and port: the gateway hears plain HTTP behind whatever terminates TLS, so the
   * scheme a client used is not known here, and the key has none. Only this route's entries: a URI served by
   * another route keeps its entry until it expires.
   */
  #invalidate (req: IncomingMessage, answer: IncomingHttpHeaders): void {
    const markers = new Set([this.#keysFor(asCacheRequest(req)).invalidation])
    const host = hostOf(req.headers)
    for (const name of ['location', 'content-location'] as const) {
      const value = answer[name]
      if (typeof value !== 'string' || host === '') continue
      try {
        // Relative references resolve against the target URI (RFC 9110 sections 10.2.2, 8.7).
        const target = new URL(`http://${host}${req.url as string}`)
        const uri = new URL(value, target)
        if (uri.host === target.host) markers.add(invalidationKey(this.#keyPrefix, this.route.id, host, uri.pathname))
      } catch {
        // Not a URI reference: nothing to invalidate.
      }
    }
    const time = Buffer.from(String(this.#now()))
    for (const marker of markers) {
      this.#store.set(marker, time, INVALIDATION_TTL_MS).catch((err: unknown) => { this.#failed(err) })
    }
  }

  /** Deletes every key of this route, or only the entries (and variant indexes) stored for paths under `pathPrefix`. */
  async purge (pathPrefix?: string): Promise<number> {
    const filter = pathPrefix === undefined
      ? undefined
      : (value: Buffer) => (decodeEntry(value) ?? decodeVariantIndex(value))?.path.startsWith(pathPrefix) === true
    return await this.#store.purge(routePrefix(this.#keyPrefix, this.route.id), filter)
  }

  /** Whether a just-stored entry answers `req` as a HIT: its Vary matches and it is fresh for this client. */
  #answers (entry: CacheEntry, req: IncomingMessage): boolean {
    return lookupDecision(entry, asCacheRequest(req), this.#config, this.#now()).kind === 'fresh'
  }

  #usableForFailure (lookup: CacheLookup & { kind: 'revalidate' }): boolean {
    return lookup.staleIfErrorUntil !== null && this.#now() < lookup.staleIfErrorUntil
  }

  /** Answers from `entry`: 304 when the client's own validators match it, no body for HEAD. */
  #answer (client: Downstream, entry: CacheEntry, status: CacheStatus, reason?: StaleReason): void {
    this.#served(status, reason)
    const now = this.#now()
    const { freshness, fields } = this.#partsOf(entry)
    const req = client.req
    const notModified = conditionalMatch(asCacheRequest(req), entry)
    let headers: string[]
    if (notModified) {
      headers = []
      for (const [name, value] of Object.entries(notModifiedHeaders(entry, now))) headers.push(name, value)
    } else {
      headers = [...fields, 'age', String(ageFrom(freshness, entry, now)), 'content-length', String(entry.body.length)]
    }
    client.cacheStatus = status
    client.writeHead(notModified ? 304 : entry.status, headers)
    client.res.end(notModified || req.method === 'HEAD' ? undefined : entry.body)
  }

  #served (status: CacheStatus, reason?: string): void {
    this.#events.outcome.publish({ route: this.route.id, status, reason })
  }

  #failed (err: unknown): void {
    this.#events.failure.publish({ route: this.route.id, err })
  }

  #decode (key: string, value: Buffer): CacheEntry | null {
    const last = this.#decoded.get(key)
    if (last !== undefined && last.value.equals(value)) return last.entry
    if (this.#decoded.size >= KEY_MEMO_SIZE) this.#decoded.clear()
    const entry = decodeEntry(value)
    this.#decoded.set(key, { value, entry })
    return entry
  }

  #partsOf (entry: CacheEntry): AnswerParts {
    let parts = this.#parts.get(entry)
    if (parts === undefined) {
      const fields: string[] = []
      for (const [name, value] of Object.entries(entry.headers)) {
        if (name === 'age' || name === 'content-length') continue
        for (const item of typeof value === 'string' ? [value] : value) fields.push(name, item)
      }
      parts = { freshness: entryFreshness(entry, this.#config), fields }
      this.#parts.set(entry, parts)
    }
    return parts
  }

  /** The request's keys, from a memo: hashing them is a good part of a hit's cost. */
  #keysFor (request: CacheRequest): CacheKeys {
    let memo = `${hostOf(request.headers)}\0${request.url}`
    for (const name of this.#config.vary) memo += `\0${fieldValue(request.headers, name) ?? '\u0001'}`
    let keys = this.#keys.get(memo)
    if (keys === undefined) {
      if (this.#keys.size >= KEY_MEMO_SIZE) this.#keys.clear()
      keys = cacheKeys(this.#keyPrefix, this.route.id, request, this.#config.vary)
      this.#keys.set(memo, keys)
    }
    return keys
  }
}

/** What went wrong in the cache itself, as the client's 500: the cause is kept for the log. */
function internalError (err: unknown): Error & { readonly code: string } {
  return gatewayError('BW_ERR_GATEWAY_INTERNAL', 'the gateway failed to handle this request', err)
}

function asCacheRequest (req: IncomingMessage): CacheRequest {
  return { method: req.method as string, url: req.url as string, headers: req.headers }
}
