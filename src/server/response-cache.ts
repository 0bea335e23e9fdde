// The response cache on the request path: lookups before Fastify, misses collapsed and stored, stale answers in place of failures.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import {
  ageFrom, cacheKeys, conditionalMatch, decodeEntry, decodeVariantIndex, entryFreshness, fieldValue, hostOf, invalidationKey, isPlainRequest,
  lookupDecision, MemoryStore, notModifiedHeaders, RedisStore, requestCacheability, revalidated, routePrefix, storability,
  TieredStore, VariantStore, type CacheEntry, type CacheKeys, type CacheRequest, type CacheStore, type EntryFreshness, type FoundValue,
  type RevalidationHeaders, type StoreHealth
} from '../cache/index.js'
import {
  DEFAULT_MEMORY_STORE_ENTRIES, DEFAULT_REDIS_KEY_PREFIX, type CacheConfig, type GatewayConfig, type RedisConfig, type RouteConfig
} from '../config/index.js'
import type { CacheOperation, CacheStoreKind, GatewayMetrics, StaleReason } from '../metrics/index.js'
import type { CapturedResponse, ForwardEnd, RouteForwarder } from '../proxy/index.js'
import { createRedisClient, readyWithin, type RedisConnection } from '../redis/index.js'

/** The X-Cache header: how the cache took part in an answer. */
export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'REVALIDATED' | 'BYPASS'

/** What a lookup found, handed from the front door to the proxy handler. */
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

/** A lookup the front door could not answer alone: what the proxy handler goes on with. */
export type PendingLookup = Exclude<CacheLookup, { kind: 'fresh' | 'stale-while-revalidate' }>

/** What the cache reports; the server turns it into metrics and log lines. */
export interface CacheEvents {
  readonly served: (route: string, status: CacheStatus, reason?: string) => void
  /** A store or refresh failure: the request goes on without the cache. */
  readonly failed: (route: string, err: unknown) => void
}

export interface RouteCacheOptions {
  readonly store: CacheStore
  readonly keyPrefix: string
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
 * One route's cache. Lookups happen before Fastify (`lookup`, `answerEarly`): a hit costs no more than the answer
 * itself. What needs the upstream (a miss, a revalidation) goes through `forward`, where concurrent misses on one
 * key share one upstream request: in this process by a shared promise, across instances by a short store lock.
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
      this.#events.failed(this.route.id, err)
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
      this.#store.delete([keys.entry]).catch((err: unknown) => { this.#events.failed(this.route.id, err) })
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
   * Answers on the raw response what the cache can answer without the upstream: a fresh entry (HIT), a stale one
   * within stale-while-revalidate (STALE, refreshed in the background), a stale one in place of an open breaker's
   * refusal (STALE). Returns the status sent and the request id it carried (made by `requestIdOf` only for an
   * answer, as the refusal does), or the lookup the request goes on with.
   */
  answerEarly (
    req: IncomingMessage, res: ServerResponse, lookup: CacheLookup, forwarder: RouteForwarder, upstreamPath: string,
    requestIdOf: (req: IncomingMessage) => string
  ): { readonly status: number, readonly requestId: string } | PendingLookup {
    let status: CacheStatus
    let reason: StaleReason | undefined
    switch (lookup.kind) {
      case 'fresh':
        status = 'HIT'
        break
      case 'stale-while-revalidate':
        status = 'STALE'
        reason = 'swr'
        break
      case 'revalidate':
        if (!this.#usableForFailure(lookup) || forwarder.tryRefuse() === null) return lookup
        status = 'STALE'
        reason = 'breaker'
        break
      default:
        return lookup
    }
    const requestId = requestIdOf(req)
    if (lookup.kind === 'stale-while-revalidate') this.#refresh(req, requestId, lookup, forwarder, upstreamPath)
    return { status: this.#answer(req, res, lookup.entry, status, { 'x-request-id': requestId }, reason), requestId }
  }

  /**
   * Forwards a request on this route, with what its lookup left to do (null when there was none: a method that is
   * not looked up, or a request injected past the server): a bypass untouched, a miss through the collapsing and
   * storing path, a stale entry through revalidation, a write with invalidation.
   */
  forward (request: FastifyRequest, reply: FastifyReply, forwarder: RouteForwarder, upstreamPath: string, lookup: PendingLookup | null): void {
    if (lookup === null) {
      if (!UNSAFE_METHODS.has(request.method)) {
        forwarder.forward(request, reply, upstreamPath)
        return
      }
      forwarder.forward(request, reply, upstreamPath, {
        onEnd: (end) => {
          // RFC 9111 section 4.4: a non-error answer to an unsafe method invalidates the target URI.
          if (end.kind === 'relayed' && end.status < 400) this.#invalidate(request.raw, end.headers)
          return false
        }
      })
      return
    }
    switch (lookup.kind) {
      case 'bypass':
        this.#events.served(this.route.id, 'BYPASS', lookup.reason)
        reply.header('x-cache', 'BYPASS')
        forwarder.forward(request, reply, upstreamPath)
        return
      case 'revalidate':
        this.#fetch(request, reply, forwarder, upstreamPath, lookup, null)
        return
      case 'miss':
        this.#collapse(request, reply, forwarder, upstreamPath, lookup)
    }
  }

  /** Concurrent misses on one key wait for the first one's answer instead of asking the upstream too. */
  #collapse (request: FastifyRequest, reply: FastifyReply, forwarder: RouteForwarder, upstreamPath: string, lookup: CacheLookup & { kind: 'miss' }): void {
    const key = lookup.keys.entry
    const pending = this.#inflight.get(key)
    if (pending !== undefined) {
      pending.then((entry) => {
        if (entry !== null && this.#answers(entry, request.raw)) this.#answerReply(request, reply, entry, 'HIT')
        else this.#fetch(request, reply, forwarder, upstreamPath, lookup, null)
      }).catch((err: unknown) => { reply.send(err) })
      return
    }
    let settle: (entry: CacheEntry | null) => void = () => {}
    this.#inflight.set(key, new Promise((resolve) => { settle = resolve }))
    const done = (entry: CacheEntry | null): void => {
      this.#inflight.delete(key)
      settle(entry)
      this.#store.unlock(lookup.keys.lock).catch(() => {})
    }
    this.#lockOrAwait(request.raw, lookup.keys).then((stored) => {
      if (stored === null) {
        this.#fetch(request, reply, forwarder, upstreamPath, lookup, done)
        return
      }
      this.#answerReply(request, reply, stored, 'HIT')
      done(stored)
    }).catch((err: unknown) => {
      done(null)
      reply.send(err)
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
      this.#events.failed(this.route.id, err)
    }
    return null
  }

  /**
   * Asks the upstream: conditionally when a stale entry has validators (a 304 that selects it refreshes it:
   * REVALIDATED; one that selects nothing is followed by an unconditional request), storing what may be stored; a
   * failure within the entry's stale-if-error window is answered from it (STALE).
   */
  #fetch (
    request: FastifyRequest, reply: FastifyReply, forwarder: RouteForwarder, upstreamPath: string,
    lookup: CacheLookup & { kind: 'miss' | 'revalidate' }, done: ((entry: CacheEntry | null) => void) | null
  ): void {
    const stale = lookup.kind === 'revalidate' ? lookup : null
    const conditional = stale !== null && Object.keys(stale.validators).length > 0
    const finish = (entry: CacheEntry | null): void => { done?.(entry) }
    // A 304 that selects no stored response: ask again without validators and store that (RFC 9111 section 4.3.4).
    const refetch = (): void => { this.#fetch(request, reply, forwarder, upstreamPath, { ...stale as CacheLookup & { kind: 'revalidate' }, validators: {} }, done) }
    reply.header('x-cache', 'MISS')
    forwarder.forward(request, reply, upstreamPath, {
      headers: stale === null ? UNCONDITIONAL : { ...UNCONDITIONAL, ...stale.validators },
      captureUpToBytes: this.#config.maxObjectSizeBytes,
      // A 304 to a request without validators is the upstream's own doing: relayed as it is, never looped on.
      holdBack: (status) => stale !== null && ((status === 304 && conditional) || (status >= 500 && this.#usableForFailure(stale))),
      onEnd: (end) => this.#fetched(request, reply, lookup.keys, stale, end, finish, refetch)
    })
  }

  #fetched (
    request: FastifyRequest, reply: FastifyReply, keys: CacheKeys, stale: (CacheLookup & { kind: 'revalidate' }) | null,
    end: ForwardEnd, finish: (entry: CacheEntry | null) => void, refetch: () => void
  ): boolean {
    switch (end.kind) {
      case 'relayed':
        this.#events.served(this.route.id, 'MISS')
        if (end.captured === null) finish(null)
        else this.#store304OrNew(request.raw, keys, end.captured).then(finish, () => { finish(null) })
        return true
      case 'held': {
        const entry = stale as CacheLookup & { kind: 'revalidate' }
        if (end.status !== 304) {
          this.#answerReply(request, reply, entry.entry, 'STALE', 'error')
          finish(null)
          return true
        }
        this.#store304OrNew(request.raw, keys, { status: 304, headers: end.headers, body: Buffer.alloc(0) }, entry.entry).then((refreshed) => {
          if (refreshed === null) {
            refetch()
            return
          }
          this.#answerReply(request, reply, refreshed, 'REVALIDATED')
          finish(refreshed)
        }).catch((err: unknown) => {
          finish(null)
          reply.send(err)
        })
        return true
      }
      case 'failed':
      case 'refused':
        if (end.kind === 'failed' && end.answered) {
          finish(null)
          return true
        }
        if (stale !== null && this.#usableForFailure(stale)) {
          this.#answerReply(request, reply, stale.entry, 'STALE', end.kind === 'refused' ? 'breaker' : 'error')
          finish(null)
          return true
        }
        finish(null)
        return false
      case 'abandoned':
        finish(null)
        return true
    }
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
        await this.#store.delete([keys.entry]).catch((err: unknown) => { this.#events.failed(this.route.id, err) })
        return refresh.entry
      }
      entry = refresh.entry
      ttlMs = refresh.store.ttlMs
    } else {
      const decision = storability(request, { status: answer.status, headers: answer.headers }, this.#config, now, answer.body.length)
      if (!decision.storable) {
        this.#events.served(this.route.id, 'BYPASS', decision.reason)
        return null
      }
      entry = { ...decision.head, body: answer.body }
      ttlMs = decision.ttlMs
    }
    try {
      await this.#variants.set(keys, req.headers, entry, ttlMs)
    } catch (err) {
      this.#events.failed(this.route.id, err)
    }
    return entry
  }

  /** Refreshes a stale entry in the background, once per key at a time in this process and, by the lock, across instances. */
  #refresh (req: IncomingMessage, requestId: string, lookup: CacheLookup & { kind: 'stale-while-revalidate' }, forwarder: RouteForwarder, upstreamPath: string): void {
    const { keys, entry, validators } = lookup
    if (this.#refreshing.has(keys.entry)) return
    this.#refreshing.add(keys.entry)
    const run = async (): Promise<void> => {
      if (!await this.#store.lock(keys.lock, this.route.timeoutMs)) return
      try {
        const answer = await forwarder.fetch(req, requestId, upstreamPath, { ...UNCONDITIONAL, ...validators }, this.#config.maxObjectSizeBytes)
        const stored = await this.#store304OrNew(req, keys, answer, entry)
        if (stored === null && answer.status === 304 && Object.keys(validators).length > 0) {
          // The 304 selects no stored response (RFC 9111 section 4.3.4): fetch it whole.
          await this.#store304OrNew(req, keys, await forwarder.fetch(req, requestId, upstreamPath, UNCONDITIONAL, this.#config.maxObjectSizeBytes))
        }
      } finally {
        await this.#store.unlock(keys.lock)
      }
    }
    run().catch((err: unknown) => { this.#events.failed(this.route.id, err) })
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
      this.#store.set(marker, time, INVALIDATION_TTL_MS).catch((err: unknown) => { this.#events.failed(this.route.id, err) })
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

  /** An answer from `entry` through Fastify's reply, so its hooks (metrics, access log) see it. */
  #answerReply (request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, status: CacheStatus, reason?: StaleReason): void {
    reply.hijack()
    this.#answer(request.raw, reply.raw, entry, status, reply.getHeaders() as OutgoingHttpHeaders, reason)
  }

  /** Writes an answer from `entry`: 304 when the client's own validators match it, no body for HEAD. */
  #answer (req: IncomingMessage, res: ServerResponse, entry: CacheEntry, status: CacheStatus, own: OutgoingHttpHeaders, reason?: StaleReason): number {
    this.#events.served(this.route.id, status, reason)
    const now = this.#now()
    const { freshness, fields } = this.#partsOf(entry)
    const age = String(ageFrom(freshness, entry, now))
    const notModified = conditionalMatch(asCacheRequest(req), entry)
    const headers: Array<string | number | readonly string[]> = []
    if (notModified) {
      for (const [name, value] of Object.entries(notModifiedHeaders(entry, now))) headers.push(name, value)
    } else {
      headers.push(...fields, 'age', age, 'content-length', String(entry.body.length))
    }
    for (const name in own) {
      const value = own[name]
      if (value !== undefined && name !== 'x-cache') headers.push(name, typeof value === 'number' ? String(value) : value)
    }
    headers.push('x-cache', status)
    const code = notModified ? 304 : entry.status
    res.writeHead(code, headers as string[])
    res.end(notModified || req.method === 'HEAD' ? undefined : entry.body)
    return code
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

function asCacheRequest (req: IncomingMessage): CacheRequest {
  return { method: req.method as string, url: req.url as string, headers: req.headers }
}

/** Every caching route's cache over one shared store, and what the actuator needs of them. */
export interface RouteCaches {
  readonly byRoute: ReadonlyMap<string, RouteCache>
  /** The `redis` health component, or null when the store is in memory. */
  readonly health: () => StoreHealth | null
  /** Deletes what route `routeId` cached, or only entries under `pathPrefix`; returns how many keys went. */
  readonly purge: (routeId: string, pathPrefix?: string) => Promise<number>
  /**
   * Resolves once Redis is connected, or after its connectTimeout: the gateway starts either way (the cache fails
   * open), but a gateway that can reach Redis serves its first requests from it.
   */
  readonly connected: () => Promise<void>
  readonly close: () => Promise<void>
}

/** How often at most a failing store is logged: an outage must not flood the log with one line per request. */
export const STORE_WARNING_INTERVAL_MS = 30_000

/**
 * Builds the store (Redis, standalone or Cluster, with each route's in-process tier; or one in-memory store) and a
 * RouteCache for each route with a `cache:` block, reporting to `metrics` and warning through `warn`.
 */
export function buildRouteCaches (config: GatewayConfig, metrics: GatewayMetrics, warn: (details: object, message: string) => void, now: () => number = Date.now): RouteCaches {
  const cached = config.routes.filter((route) => route.cache !== null)
  const redis = config.redis
  let lastWarning = -Infinity
  const failed = (route: string, err: unknown): void => {
    if (now() - lastWarning < STORE_WARNING_INTERVAL_MS) return
    lastWarning = now()
    warn({ route, err }, `cache bypassed: ${(err as Error).message} (logged at most every ${STORE_WARNING_INTERVAL_MS / 1000} s)`)
  }
  const observe = (store: CacheStoreKind) => (operation: CacheOperation, seconds: number, error?: Error): void => {
    metrics.observeCacheOperation(operation, store, seconds, error !== undefined)
  }
  const events: CacheEvents = {
    served: (route, status, reason) => {
      if (status === 'HIT' || status === 'REVALIDATED') metrics.countCacheHit(route)
      else if (status === 'MISS') metrics.countCacheMiss(route)
      else if (status === 'STALE') metrics.countStaleServed(route, reason as StaleReason)
      else metrics.countCacheBypass(route, reason as string)
    },
    failed
  }
  for (const route of cached) metrics.declareCache(route.id)

  if (cached.length === 0) {
    return { byRoute: new Map(), health: () => null, purge: async () => 0, connected: async () => {}, close: async () => {} }
  }
  let shared: CacheStore
  let connection: RedisConnection | null = null
  if (redis === null) {
    shared = new MemoryStore({ maxEntries: DEFAULT_MEMORY_STORE_ENTRIES, now, onOperation: observe('memory') })
  } else {
    connection = createRedisClient({ ...redis, onError: (err) => { failed('-', err) } })
    shared = new RedisStore(connection, { commandTimeoutMs: redis.commandTimeoutMs, onOperation: observe('redis') })
  }
  const keyPrefix = redis?.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX
  const tiers: TieredStore[] = []
  const byRoute = new Map(cached.map((route) => {
    const tier = (route.cache as CacheConfig).memory
    let store = shared
    if (tier !== null && redis !== null) {
      const tiered = new TieredStore(shared, { maxEntries: tier.maxEntries, ttlMs: tier.ttlMs, now, onOperation: observe('memory') })
      tiers.push(tiered)
      store = tiered
    }
    return [route.id, new RouteCache(route, { store, keyPrefix, events, now })]
  }))
  return {
    byRoute,
    health: () => connection === null ? null : shared.health(),
    purge: async (routeId, pathPrefix) => await (byRoute.get(routeId) as RouteCache).purge(pathPrefix),
    connected: async () => {
      if (connection !== null) await readyWithin(connection, (redis as RedisConfig).connectTimeoutMs)
    },
    close: async () => {
      await Promise.all(tiers.map(async (tier) => { await tier.close() }))
      await shared.close()
    }
  }
}
