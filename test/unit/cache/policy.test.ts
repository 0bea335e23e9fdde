// The RFC 9111 shared-cache policy with a fake clock: storability, freshness, stale windows, revalidation, Age, 304s.
import t from 'tap'
import {
  ageFrom, ageSeconds, BYPASS_REASONS, conditionalMatch, decodeEntry, encodeEntry, entryFreshness, isPlainRequest, lookupDecision, notModifiedHeaders,
  requestCacheability, responseHeaders, REVALIDATION_RETENTION_MS, revalidated, storability, storeTtlMs,
  type BypassReason, type CacheEntry, type CachePolicyConfig, type CacheRequest, type CacheResponse, type HeaderFields,
  type LookupDecision
} from '../../../src/cache/index.js'

const T0 = Date.parse('2025-01-01T00:00:00Z')
const at = (seconds: number): number => T0 + seconds * 1000
const httpDate = (seconds: number): string => new Date(at(seconds)).toUTCString()

const config = (extra: Partial<CachePolicyConfig> = {}): CachePolicyConfig => ({
  ttlMs: null,
  maxObjectSizeBytes: 1024,
  staleWhileRevalidateMs: 0,
  staleIfErrorMs: 0,
  vary: [],
  ...extra
})

const get = (headers: HeaderFields = {}, url = '/items/1', method = 'GET'): CacheRequest =>
  ({ method, url, headers: { host: 'api.example.com', ...headers } })

/** An upstream answer sent at T0 (its Date). */
const answer = (headers: HeaderFields = {}, status = 200): CacheResponse =>
  ({ status, headers: { date: httpDate(0), 'content-type': 'application/json', ...headers } })

const BODY = Buffer.from('{"id":1}')

/** Stores the answer to `request` at `now` and returns the entry, as read back from its encoded form. */
const stored = (
  headers: HeaderFields, cfg = config(), request = get(), now = T0, status = 200
): CacheEntry => {
  const decision = storability(request, answer(headers, status), cfg, now, BODY.length)
  if (!decision.storable) throw new Error(`expected storable, got ${decision.reason}`)
  const entry = decodeEntry(encodeEntry({ ...decision.head, body: BODY }))
  if (entry === null) throw new Error('the entry did not decode')
  return entry
}

const reasonOf = (headers: HeaderFields, cfg = config(), request = get(), status = 200, bodySize?: number): BypassReason | 'storable' => {
  const decision = storability(request, answer(headers, status), cfg, T0, bodySize)
  return decision.storable ? 'storable' : decision.reason
}

const kindAt = (entry: CacheEntry, seconds: number, cfg = config(), request = get()): string => {
  const decision = lookupDecision(entry, request, cfg, at(seconds))
  return decision.kind === 'miss' ? `miss:${decision.reason}` : decision.kind
}

const revalidate = (decision: LookupDecision): Extract<LookupDecision, { kind: 'revalidate' }> => {
  if (decision.kind !== 'revalidate') throw new Error(`expected revalidate, got ${decision.kind}`)
  return decision
}

t.test('requestCacheability: methods, client directives, ranges and preconditions', async (t) => {
  t.same(requestCacheability(get()), { cacheable: true, noCache: false })
  t.same(requestCacheability(get({}, '/x', 'HEAD')), { cacheable: true, noCache: false })
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
    t.same(requestCacheability(get({}, '/x', method)), { cacheable: false, reason: 'method' }, method)
  }
  t.same(requestCacheability(get({ 'cache-control': 'no-store' })), { cacheable: false, reason: 'no-store' })
  t.same(requestCacheability(get({ 'cache-control': 'max-age=0, No-Store' })), { cacheable: false, reason: 'no-store' }, 'names are case-insensitive')
  t.same(requestCacheability(get({ 'cache-control': 'no-cache' })), { cacheable: true, noCache: true })
  t.same(requestCacheability(get({ pragma: 'no-cache' })), { cacheable: true, noCache: true }, 'Pragma without Cache-Control')
  t.same(requestCacheability(get({ pragma: 'no-cache', 'cache-control': 'max-age=5' })), { cacheable: true, noCache: false },
    'Pragma is ignored beside Cache-Control')
  t.same(requestCacheability(get({ range: 'bytes=0-99' })), { cacheable: false, reason: 'range' })
  t.same(requestCacheability(get({ 'if-match': '"v1"' })), { cacheable: false, reason: 'precondition' })
  t.same(requestCacheability(get({ 'if-unmodified-since': httpDate(0) })), { cacheable: false, reason: 'precondition' })
  t.same(requestCacheability(get({ 'if-none-match': '"v1"', 'if-modified-since': httpDate(0) })), { cacheable: true, noCache: false },
    'the client\'s own validators are answered by the gateway')
})

t.test('storability: what RFC 9111 lets a shared cache store', async (t) => {
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }), 'storable')
  t.equal(reasonOf({ 'cache-control': 'no-store' }), 'no-store')
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }, config(), get({ 'cache-control': 'no-store' })), 'no-store', 'the client\'s no-store')
  t.equal(reasonOf({ 'cache-control': 'private, max-age=60' }), 'private')
  t.equal(reasonOf({ 'cache-control': 'private="x-user", max-age=60' }), 'private', 'qualified private is still private')
  t.equal(reasonOf({ 'cache-control': 'Private, Max-Age=60' }), 'private', 'directive names are case-insensitive')
  t.equal(reasonOf({ 'cache-control': 'NO-STORE' }), 'no-store')
  t.equal(reasonOf({ 'cache-control': 'public, max-age=60', 'set-cookie': 'session=1' }), 'set-cookie', 'never, even public')
  t.equal(reasonOf({ 'cache-control': 'max-age=60', vary: '*' }), 'vary')
  t.equal(reasonOf({ 'cache-control': 'max-age=60', vary: 'accept-encoding, *' }), 'vary')
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }, config(), get({}, '/items/1', 'HEAD')), 'method', 'HEAD answers are not stored')
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }, config(), get({}, '/items/1', 'POST')), 'method')
})

t.test('storability: Authorization needs public or s-maxage (RFC 9111 section 3.5)', async (t) => {
  const authorized = get({ authorization: 'Bearer abc' })
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }, config(), authorized), 'authorization')
  t.equal(reasonOf({ 'cache-control': 'max-age=60, must-revalidate' }, config(), authorized), 'authorization',
    'must-revalidate is not enough here (the library would store it)')
  t.equal(reasonOf({ 'cache-control': 'public, max-age=60' }, config(), authorized), 'storable')
  t.equal(reasonOf({ 'cache-control': 's-maxage=60' }, config(), authorized), 'storable')
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }, config(), get({ authorization: '' })), 'authorization', 'an empty one counts')
})

t.test('storability: statuses', async (t) => {
  for (const status of [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]) {
    t.equal(reasonOf({ 'cache-control': 'max-age=60' }, config(), get(), status), 'storable', String(status))
  }
  for (const status of [206, 400, 401, 403, 500, 502, 503, 504]) {
    t.equal(reasonOf({ 'cache-control': 'max-age=60' }, config(), get(), status), 'status', String(status))
  }
  t.equal(reasonOf({}, config({ ttlMs: 60_000 }), get(), 302), 'status', 'a 302 needs explicit freshness')
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }, config(), get(), 302), 'storable')
  t.equal(reasonOf({}, config({ ttlMs: 60_000 }), get(), 404), 'storable', 'a 404 is cacheable by default: ttlMs applies')
})

t.test('storability: size', async (t) => {
  const cfg = config({ maxObjectSizeBytes: 100 })
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }, cfg, get(), 200, 100), 'storable', 'exactly the limit')
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }, cfg, get(), 200, 101), 'too-large')
  t.equal(reasonOf({ 'cache-control': 'max-age=60', 'content-length': '101' }, cfg), 'too-large', 'Content-Length before the body')
  t.equal(reasonOf({ 'cache-control': 'max-age=60', 'content-length': '999' }, cfg, get(), 200, 10), 'storable', 'the real size wins')
  t.equal(reasonOf({ 'cache-control': 'max-age=60' }, cfg), 'storable', 'unknown size: the caller cuts the stream')
})

t.test('storability: what no request could ever use is not stored', async (t) => {
  t.equal(reasonOf({ 'cache-control': 'max-age=0' }), 'expired')
  t.equal(reasonOf({ expires: httpDate(-60) }), 'expired', 'an Expires in the past')
  t.equal(reasonOf({ expires: '0' }), 'expired', 'an invalid Expires means already expired')
  t.equal(reasonOf({ 'cache-control': 'no-cache' }), 'expired', 'no-cache without a validator')
  t.equal(reasonOf({}), 'expired', 'nothing stated, no validator, no ttlMs')
  t.equal(reasonOf({ 'cache-control': 'no-cache', etag: '"v1"' }), 'storable', 'no-cache with a validator: stored, always revalidated')
  t.equal(reasonOf({ 'cache-control': 'max-age=0', 'last-modified': httpDate(-3600) }), 'storable')
  t.equal(reasonOf({ 'cache-control': 'max-age=0' }, config({ staleIfErrorMs: 60_000 })), 'storable', 'kept for stale-if-error')
  t.equal(reasonOf({ 'cache-control': 'max-age=0, stale-while-revalidate=30' }), 'storable')
})

t.test('the reason set is fixed and documented', async (t) => {
  t.same([...BYPASS_REASONS].sort(), [
    'authorization', 'expired', 'method', 'no-store', 'precondition', 'private', 'range', 'set-cookie', 'status', 'too-large', 'vary'
  ])
})

t.test('max-age: fresh up to the second it expires', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60' })
  t.equal(kindAt(entry, 0), 'fresh')
  t.equal(kindAt(entry, 59.999), 'fresh')
  t.equal(kindAt(entry, 60), 'revalidate')
})

t.test('s-maxage wins over max-age in a shared cache', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=10, s-maxage=120' })
  t.equal(kindAt(entry, 100), 'fresh')
  t.equal(kindAt(entry, 120), 'revalidate')
  const shorter = stored({ 'cache-control': 'max-age=600, s-maxage=5' })
  t.equal(kindAt(shorter, 5), 'revalidate')
})

t.test('Expires counts from the upstream Date; max-age wins over it', async (t) => {
  const entry = stored({ expires: httpDate(120) })
  t.equal(kindAt(entry, 119.9), 'fresh')
  t.equal(kindAt(entry, 120), 'revalidate')
  const both = stored({ expires: httpDate(3600), 'cache-control': 'max-age=30' })
  t.equal(kindAt(both, 30), 'revalidate')
  // Stored 20 s after its Date: Expires - Date is still 120 s of freshness, counted from receipt.
  const late = stored({ expires: httpDate(120) }, config(), get(), at(20))
  t.equal(kindAt(late, 139.9), 'fresh')
  t.equal(kindAt(late, 140), 'revalidate')
})

t.test('ttlMs is the freshness of a response that states none; the upstream wins when it does', async (t) => {
  const cfg = config({ ttlMs: 30_000 })
  const silent = stored({}, cfg)
  t.equal(kindAt(silent, 29.999, cfg), 'fresh')
  t.equal(kindAt(silent, 30, cfg), 'revalidate')
  t.equal(kindAt(stored({ 'cache-control': 'max-age=5' }, cfg), 5, cfg), 'revalidate', 'max-age wins')
  t.equal(kindAt(stored({ 'cache-control': 'max-age=300' }, cfg), 200, cfg), 'fresh', 'also when longer')
  t.equal(kindAt(stored({ expires: httpDate(10) }, cfg), 10, cfg), 'revalidate', 'Expires wins')
  t.equal(kindAt(stored({ 'cache-control': 'no-cache', etag: '"v1"' }, cfg), 0, cfg), 'revalidate', 'never for no-cache')
  t.equal(kindAt(stored({ 'cache-control': 'public' }, cfg), 29, cfg), 'fresh', 'public alone states no freshness')
})

t.test('without ttlMs, the Last-Modified heuristic: a tenth of its age (RFC 9111 section 4.2.2)', async (t) => {
  const lastModified = { 'last-modified': httpDate(-10 * 86_400) }
  const entry = stored(lastModified)
  t.equal(kindAt(entry, 86_399), 'fresh')
  t.equal(kindAt(entry, 86_400), 'revalidate')
  const cfg = config({ ttlMs: 60_000 })
  t.equal(kindAt(stored(lastModified, cfg), 60, cfg), 'revalidate', 'ttlMs replaces the heuristic')
})

t.test('no-cache: stored, but every answer is revalidated first', async (t) => {
  const entry = stored({ 'cache-control': 'no-cache', etag: '"v1"' })
  const decision = revalidate(lookupDecision(entry, get(), config(), at(0)))
  t.same(decision.revalidationHeaders, { 'if-none-match': '"v1"' })
  t.equal(decision.staleIfErrorUntil, null, 'and never served stale')
  const pragma = stored({ pragma: 'no-cache', etag: '"v1"' })
  t.equal(kindAt(pragma, 0), 'revalidate', 'Pragma: no-cache without Cache-Control is no-cache')
})

t.test('must-revalidate: fresh answers while fresh, nothing stale afterwards', async (t) => {
  const cfg = config({ staleWhileRevalidateMs: 60_000, staleIfErrorMs: 60_000 })
  const entry = stored({ 'cache-control': 'max-age=60, must-revalidate, stale-while-revalidate=60, stale-if-error=60' }, cfg)
  t.equal(kindAt(entry, 59, cfg), 'fresh', 'http-cache-semantics\' evaluateRequest would revalidate here')
  t.equal(revalidate(lookupDecision(entry, get(), cfg, at(60))).staleIfErrorUntil, null)
  const proxy = stored({ 'cache-control': 'max-age=60, proxy-revalidate', etag: '"v1"' }, cfg)
  t.equal(kindAt(proxy, 0, cfg), 'revalidate', 'proxy-revalidate: the library never deems it fresh in a shared cache')
  t.equal(revalidate(lookupDecision(proxy, get(), cfg, at(1))).staleIfErrorUntil, null)
})

t.test('stale-while-revalidate: the configured window and its edges', async (t) => {
  const cfg = config({ staleWhileRevalidateMs: 30_000 })
  const entry = stored({ 'cache-control': 'max-age=60', etag: '"v1"' }, cfg)
  t.equal(kindAt(entry, 59.999, cfg), 'fresh')
  t.equal(kindAt(entry, 60, cfg), 'stale-while-revalidate')
  t.equal(kindAt(entry, 89.999, cfg), 'stale-while-revalidate')
  t.equal(kindAt(entry, 90, cfg), 'revalidate')
  const decision = lookupDecision(entry, get(), cfg, at(70))
  t.same(decision, { kind: 'stale-while-revalidate', revalidationHeaders: { 'if-none-match': '"v1"' } })
  t.equal(kindAt(entry, 60, config()), 'revalidate', 'no window, no stale answer')
})

t.test('stale-while-revalidate: the response\'s own directive, and what forbids stale answers', async (t) => {
  const cfg = config({ staleWhileRevalidateMs: 30_000 })
  const own = stored({ 'cache-control': 'max-age=60, stale-while-revalidate=120' }, cfg)
  t.equal(kindAt(own, 179.9, cfg), 'stale-while-revalidate', 'the longer window applies')
  t.equal(kindAt(own, 180, cfg), 'revalidate')
  t.equal(kindAt(stored({ 'cache-control': 'max-age=60, stale-while-revalidate=10' }, cfg), 85, cfg), 'stale-while-revalidate',
    'the config\'s, when longer')
  t.equal(kindAt(stored({ 'cache-control': 'max-age=60, must-revalidate' }, cfg), 60, cfg), 'revalidate')
  const sMaxage = stored({ 'cache-control': 's-maxage=60' }, cfg)
  t.equal(kindAt(sMaxage, 60, cfg), 'revalidate', 's-maxage implies proxy-revalidate: no configured window')
  const sMaxageOwn = stored({ 'cache-control': 's-maxage=60, stale-while-revalidate=30' }, cfg)
  t.equal(kindAt(sMaxageOwn, 60, cfg), 'stale-while-revalidate', 'but its own directive beside it counts')
})

t.test('stale-while-revalidate: a client stating what age it takes gets no stale answer', async (t) => {
  const cfg = config({ staleWhileRevalidateMs: 30_000 })
  const entry = stored({ 'cache-control': 'max-age=60', etag: '"v1"' }, cfg)
  t.equal(kindAt(entry, 70, cfg, get({ 'cache-control': 'no-cache' })), 'revalidate')
  t.equal(kindAt(entry, 70, cfg, get({ 'cache-control': 'max-age=3600' })), 'revalidate')
  t.equal(kindAt(entry, 70, cfg, get({ 'cache-control': 'min-fresh=1' })), 'revalidate')
})

t.test('stale-if-error: until when a failure may be answered from the entry', async (t) => {
  const cfg = config({ staleIfErrorMs: 300_000 })
  const entry = stored({ 'cache-control': 'max-age=60' }, cfg)
  t.equal(revalidate(lookupDecision(entry, get(), cfg, at(100))).staleIfErrorUntil, at(360))
  t.equal(revalidate(lookupDecision(entry, get(), cfg, at(359.999))).staleIfErrorUntil, at(360))
  t.equal(revalidate(lookupDecision(entry, get(), cfg, at(360))).staleIfErrorUntil, null)
  t.equal(revalidate(lookupDecision(entry, get(), config(), at(60))).staleIfErrorUntil, null, 'no window')
  const own = stored({ 'cache-control': 'max-age=60, stale-if-error=600' }, cfg)
  t.equal(revalidate(lookupDecision(own, get(), cfg, at(100))).staleIfErrorUntil, at(660), 'the longer window applies')
  const ownOnly = stored({ 'cache-control': 'max-age=60, stale-if-error=600' })
  t.equal(revalidate(lookupDecision(ownOnly, get(), config(), at(659))).staleIfErrorUntil, at(660))
  for (const forbidding of ['must-revalidate', 'proxy-revalidate', 'no-cache']) {
    const strict = stored({ 'cache-control': `max-age=60, stale-if-error=600, ${forbidding}`, etag: '"v1"' }, cfg)
    t.equal(revalidate(lookupDecision(strict, get(), cfg, at(100))).staleIfErrorUntil, null, forbidding)
  }
  const sMaxage = stored({ 'cache-control': 's-maxage=60' }, cfg)
  t.equal(revalidate(lookupDecision(sMaxage, get(), cfg, at(100))).staleIfErrorUntil, null, 's-maxage shuts out the config window')
})

t.test('stale-if-error: a fresh entry the client asked to revalidate', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60, must-revalidate', etag: '"v1"' })
  const maxAge0 = revalidate(lookupDecision(entry, get({ 'cache-control': 'max-age=0' }), config(), at(10)))
  t.equal(maxAge0.staleIfErrorUntil, at(60), 'still fresh until 60 s: it may answer a failure')
  const noCache = revalidate(lookupDecision(entry, get({ 'cache-control': 'no-cache' }), config(), at(10)))
  t.equal(noCache.staleIfErrorUntil, null, 'the client\'s no-cache forbids it')
})

t.test('client directives: no-cache, Pragma, max-age, min-fresh', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=600', 'last-modified': httpDate(-60) })
  t.equal(kindAt(entry, 10, config(), get({ 'cache-control': 'no-cache' })), 'revalidate')
  t.equal(kindAt(entry, 10, config(), get({ pragma: 'no-cache' })), 'revalidate')
  t.equal(kindAt(entry, 10, config(), get({ 'cache-control': 'max-age=0' })), 'revalidate')
  t.equal(kindAt(entry, 10, config(), get({ 'cache-control': 'max-age=10' })), 'fresh', 'age 10 <= 10')
  t.equal(kindAt(entry, 10.5, config(), get({ 'cache-control': 'max-age=10' })), 'revalidate')
  t.equal(kindAt(entry, 500, config(), get({ 'cache-control': 'min-fresh=100' })), 'fresh')
  t.equal(kindAt(entry, 500.1, config(), get({ 'cache-control': 'min-fresh=100' })), 'revalidate')
  t.equal(kindAt(entry, 10, config(), get({ 'cache-control': 'max-age=abc' })), 'fresh', 'an invalid argument is ignored')
  const decision = revalidate(lookupDecision(entry, get({ 'cache-control': 'no-cache' }), config(), at(10)))
  t.same(decision.revalidationHeaders, { 'if-modified-since': httpDate(-60) })
})

t.test('revalidation headers: the entry\'s validators only', async (t) => {
  const headersFor = (stored: CacheEntry, request = get()): unknown =>
    revalidate(lookupDecision(stored, request, config(), at(61))).revalidationHeaders
  t.same(headersFor(stored({ 'cache-control': 'max-age=60', etag: 'W/"v1"' })), { 'if-none-match': 'W/"v1"' })
  t.same(headersFor(stored({ 'cache-control': 'max-age=60', 'last-modified': httpDate(-5) })), { 'if-modified-since': httpDate(-5) })
  t.same(headersFor(stored({ 'cache-control': 'max-age=60', etag: '"v1"', 'last-modified': httpDate(-5) })),
    { 'if-none-match': '"v1"', 'if-modified-since': httpDate(-5) })
  t.same(headersFor(stored({ 'cache-control': 'max-age=60' }, config({ staleIfErrorMs: 60_000 }))), {}, 'none: an unconditional fetch')
  t.same(headersFor(stored({ 'cache-control': 'max-age=60', etag: '"v1"' }), get({ 'if-none-match': '"mine"', 'if-modified-since': httpDate(0) })),
    { 'if-none-match': '"v1"' }, 'not the client\'s')
})

t.test('Vary: the response\'s fields must match the stored request\'s', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60', vary: 'Accept-Encoding' }, config(), get({ 'accept-encoding': 'gzip' }))
  t.equal(kindAt(entry, 1, config(), get({ 'accept-encoding': 'gzip' })), 'fresh')
  t.equal(kindAt(entry, 1, config(), get({ 'accept-encoding': 'br' })), 'miss:vary')
  t.equal(kindAt(entry, 1, config(), get()), 'miss:vary', 'absent is not gzip')
  const none = stored({ 'cache-control': 'max-age=60', vary: 'accept-encoding, x-tenant' })
  t.equal(kindAt(none, 1), 'fresh', 'absent matches absent')
  t.equal(kindAt(none, 1, config(), get({ 'x-tenant': 'acme' })), 'miss:vary')
  const many = stored({ 'cache-control': 'max-age=60', vary: ['accept-encoding', 'accept-language'] }, config(),
    get({ 'accept-encoding': 'gzip', 'accept-language': 'en' }))
  t.equal(kindAt(many, 1, config(), get({ 'accept-encoding': 'gzip', 'accept-language': 'en' })), 'fresh', 'repeated Vary lines')
  t.equal(kindAt(many, 1, config(), get({ 'accept-encoding': 'gzip', 'accept-language': 'de' })), 'miss:vary')
})

t.test('Vary: values match once normalised as RFC 9111 section 4.1 allows (whitespace, case where caseless)', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60', vary: 'Accept-Language, X-Tenant' }, config(), get({ 'accept-language': 'en, de', 'x-tenant': 'Acme' }))
  t.equal(kindAt(entry, 1, config(), get({ 'accept-language': 'EN,de', 'x-tenant': ' Acme ' })), 'fresh')
  t.equal(kindAt(entry, 1, config(), get({ 'accept-language': 'de, en', 'x-tenant': 'Acme' })), 'miss:vary', 'the order counts')
  t.equal(kindAt(entry, 1, config(), get({ 'accept-language': 'en, de', 'x-tenant': 'acme' })), 'miss:vary', 'an unknown field keeps its case')
})

t.test('Vary: request field values are stored as fingerprints, never in clear', async (t) => {
  const secret = 'session=s3cr3t-value'
  const token = 'Bearer t0k3n-value'
  const request = get({ cookie: secret, authorization: token })
  const entry = stored({ 'cache-control': 'public, max-age=60', vary: 'Cookie, Authorization' }, config(), request)
  const bytes = encodeEntry(entry).toString('latin1')
  t.notOk(bytes.includes('s3cr3t') || bytes.includes('t0k3n'), 'no cookie or credential in the stored value')
  t.equal(kindAt(entry, 1, config(), request), 'fresh')
  t.equal(kindAt(entry, 1, config(), get({ cookie: 'session=other', authorization: token })), 'miss:vary')
  t.equal(kindAt(entry, 1, config(), get({ cookie: secret, authorization: 'Bearer other' })), 'miss:vary')
})

t.test('Authorization on lookup: only public or s-maxage entries answer it', async (t) => {
  const authorized = get({ authorization: 'Bearer abc' })
  t.equal(kindAt(stored({ 'cache-control': 'max-age=60' }), 1, config(), authorized), 'miss:authorization')
  t.equal(kindAt(stored({ 'cache-control': 'public, max-age=60' }), 1, config(), authorized), 'fresh')
  t.equal(kindAt(stored({ 'cache-control': 's-maxage=60' }), 1, config(), authorized), 'fresh')
  const fromAuthorized = stored({ 'cache-control': 'public, max-age=60' }, config(), authorized)
  t.equal(kindAt(fromAuthorized, 1, config(), get()), 'fresh', 'a public answer to an authorized request answers anyone')
})

t.test('the entry answers its own target: HEAD, host case and query order too', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60' }, config(), get({}, '/items?b=2&a=1'))
  t.equal(kindAt(entry, 1, config(), get({}, '/items?a=1&b=2')), 'fresh')
  t.equal(kindAt(entry, 1, config(), get({}, '/items?a=1&b=2', 'HEAD')), 'fresh', 'a stored GET answers HEAD')
  t.equal(kindAt(entry, 1, config(), get({ host: 'API.EXAMPLE.COM' }, '/items?b=2&a=1')), 'fresh')
  t.equal(kindAt(entry, 1, config(), get({}, '/items?a=2')), 'miss:target')
  t.equal(kindAt(entry, 1, config(), get({ host: 'other.example.com' }, '/items?a=1&b=2')), 'miss:target')
})

t.test('Age: the upstream\'s Age plus the time stored, in whole seconds', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60', age: '10' })
  t.equal(ageSeconds(entry, at(0)), 10)
  t.equal(ageSeconds(entry, at(5.9)), 15, 'rounded down')
  t.equal(ageSeconds(entry, at(49.999)), 59)
  t.equal(kindAt(entry, 49.999), 'fresh', 'the Age counts against max-age')
  t.equal(kindAt(entry, 50), 'revalidate')
  t.equal(ageSeconds(stored({ 'cache-control': 'max-age=60' }), at(-30)), 0, 'never negative, even if the clock goes back')
  t.equal(ageSeconds(stored({ 'cache-control': 'max-age=60', age: 'x' }), at(3)), 3, 'an invalid Age counts as 0')
})

t.test('responseHeaders: the stored fields, the origin Date, and Age', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60', etag: '"v1"', connection: 'close', 'transfer-encoding': 'chunked', age: '2' })
  const headers = responseHeaders(entry, at(7))
  t.same(headers, {
    date: httpDate(0),
    'content-type': 'application/json',
    'cache-control': 'max-age=60',
    etag: '"v1"',
    age: '9'
  })
  t.equal(entry.headers.age, '2', 'the entry keeps the upstream\'s Age')
})

t.test('notModifiedHeaders: what a 304 carries', async (t) => {
  const entry = stored({
    'cache-control': 'max-age=60',
    etag: '"v1"',
    'last-modified': httpDate(-5),
    expires: httpDate(60),
    vary: 'accept',
    'content-location': '/items/1.json',
    'content-length': '8'
  })
  t.same(notModifiedHeaders(entry, at(3)), {
    'cache-control': 'max-age=60',
    'content-location': '/items/1.json',
    date: httpDate(0),
    etag: '"v1"',
    expires: httpDate(60),
    vary: 'accept',
    age: '3'
  })
  const lastModifiedOnly = stored({ 'cache-control': 'max-age=60', 'last-modified': httpDate(-5) })
  t.equal(notModifiedHeaders(lastModifiedOnly, at(0))['last-modified'], httpDate(-5), 'Last-Modified when there is no ETag')
})

t.test('conditionalMatch: the client\'s own validators (RFC 9110 section 13.1)', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60', etag: '"v1"', 'last-modified': httpDate(-60) })
  const match = (headers: HeaderFields, on = entry): boolean => conditionalMatch(get(headers), on)
  t.ok(match({ 'if-none-match': '"v1"' }))
  t.ok(match({ 'if-none-match': 'W/"v1"' }), 'weak comparison')
  t.ok(match({ 'if-none-match': '"v0", "v1"' }))
  t.ok(match({ 'if-none-match': '"a,b", W/"v1"' }), 'a comma inside a tag')
  t.ok(match({ 'if-none-match': '*' }))
  t.notOk(match({ 'if-none-match': '"v2"' }))
  t.notOk(match({ 'if-none-match': 'v1' }), 'not an entity tag')
  t.notOk(match({ 'if-none-match': '"v2"', 'if-modified-since': httpDate(0) }), 'If-Modified-Since is ignored beside If-None-Match')
  t.ok(match({ 'if-modified-since': httpDate(-60) }), 'not modified since that very second')
  t.ok(match({ 'if-modified-since': httpDate(0) }))
  t.notOk(match({ 'if-modified-since': httpDate(-61) }))
  t.notOk(match({ 'if-modified-since': 'yesterday' }), 'not a date: ignored')
  t.notOk(match({}))
  const weakStored = stored({ 'cache-control': 'max-age=60', etag: 'W/"v1"' })
  t.ok(match({ 'if-none-match': '"v1"' }, weakStored))
  t.notOk(match({ 'if-none-match': '"v1"' }, stored({ 'cache-control': 'max-age=60' })), 'no ETag stored')
  const dateOnly = stored({ 'cache-control': 'max-age=60' })
  t.ok(match({ 'if-modified-since': httpDate(0) }, dateOnly), 'without Last-Modified, the Date')
  t.notOk(match({ 'if-modified-since': httpDate(-1) }, dateOnly))
  const noDate = stored({ 'cache-control': 'max-age=60', date: undefined }, config(), get(), at(100))
  t.ok(match({ 'if-modified-since': httpDate(100) }, noDate), 'without Date, the time it was stored')
  t.notOk(match({ 'if-modified-since': httpDate(99) }, noDate))
  const notFound = stored({ 'cache-control': 'max-age=60', etag: '"v1"' }, config(), get(), T0, 404)
  t.notOk(match({ 'if-none-match': '"v1"' }, notFound), 'only 2xx entries')
})

t.test('revalidated: a matching 304 refreshes the entry', async (t) => {
  const cfg = config()
  const entry = stored({
    'cache-control': 'max-age=60', etag: '"v1"', 'content-length': '8', 'content-encoding': 'gzip', 'x-version': 'a', age: '30'
  })
  const res304: CacheResponse = {
    status: 304,
    headers: {
      date: httpDate(100),
      etag: '"v1"',
      'cache-control': 'max-age=120',
      'x-version': 'b',
      'x-new': 'yes',
      'content-length': '0',
      'content-encoding': 'identity',
      connection: 'close'
    }
  }
  const refresh = revalidated(entry, get(), res304, cfg, at(100))
  if (refresh === null) throw new Error('expected a refresh')
  t.same(refresh.entry.headers, {
    date: httpDate(100),
    'content-type': 'application/json',
    'cache-control': 'max-age=120',
    etag: '"v1"',
    'content-length': '8',
    'content-encoding': 'gzip',
    'x-version': 'b',
    'x-new': 'yes'
  }, 'fields replaced and added, but those of the body; the old Age gone')
  t.ok(refresh.entry.body.equals(BODY))
  t.equal(refresh.entry.storedAt, at(100))
  t.equal(refresh.entry.path, '/items/1')
  t.equal(ageSeconds(refresh.entry, at(100)), 0)
  t.equal(kindAt(refresh.entry, 219.9, cfg), 'fresh', 'the new max-age counts from the 304')
  t.equal(kindAt(refresh.entry, 220, cfg), 'revalidate')
  t.match(refresh.store, { storable: true, ttlMs: 120_000 + REVALIDATION_RETENTION_MS })
})

t.test('revalidated: a 304 that does not validate the entry is refused (RFC 9111 section 4.3.4)', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60', etag: '"v1"' })
  const with304 = (headers: HeaderFields): unknown => revalidated(entry, get(), { status: 304, headers }, config(), at(100))
  t.equal(with304({ etag: '"v2"' }), null, 'another entity tag')
  t.equal(with304({ date: httpDate(100) }), null, 'no validator while the entry has one')
  t.not(with304({ etag: 'W/"v1"' }), null, 'a weak match')
  const lastModified = stored({ 'cache-control': 'max-age=60', 'last-modified': httpDate(-5) })
  t.not(revalidated(lastModified, get(), { status: 304, headers: { 'last-modified': httpDate(-5) } }, config(), at(100)), null)
  t.equal(revalidated(lastModified, get(), { status: 304, headers: { 'last-modified': httpDate(50) } }, config(), at(100)), null)
  const none = stored({ 'cache-control': 'max-age=60' }, config({ staleIfErrorMs: 60_000 }))
  t.not(revalidated(none, get(), { status: 304, headers: {} }, config(), at(100)), null, 'neither has a validator')
})

t.test('revalidated: a 304 can make the entry unstorable', async (t) => {
  const entry = stored({ 'cache-control': 'max-age=60', etag: '"v1"' })
  const refresh = revalidated(entry, get(), { status: 304, headers: { etag: '"v1"', 'cache-control': 'private' } }, config(), at(100))
  t.same(refresh?.store, { storable: false, reason: 'private' })
  t.equal(refresh?.entry.headers['cache-control'], 'private', 'the answer still carries the new fields')
  t.equal(refresh?.entry.storedAt, at(100))
})

t.test('storeTtlMs: remaining freshness plus the longest stale use', async (t) => {
  const ttl = (headers: HeaderFields, cfg = config(), now = T0): number => {
    const decision = storability(get(), answer(headers), cfg, now)
    return decision.storable ? decision.ttlMs : 0
  }
  t.equal(ttl({ 'cache-control': 'max-age=60' }), 60_000)
  t.equal(ttl({ 'cache-control': 'max-age=60', age: '20' }), 40_000, 'less the upstream\'s Age')
  t.equal(ttl({ 'cache-control': 'max-age=60' }, config({ staleWhileRevalidateMs: 30_000, staleIfErrorMs: 90_000 })), 150_000)
  t.equal(ttl({ 'cache-control': 'max-age=60, stale-while-revalidate=300' }, config({ staleIfErrorMs: 90_000 })), 360_000)
  t.equal(ttl({ 'cache-control': 'max-age=60, must-revalidate' }, config({ staleIfErrorMs: 90_000 })), 60_000, 'no stale use')
  t.equal(ttl({ 'cache-control': 'max-age=60', etag: '"v1"' }), 60_000 + REVALIDATION_RETENTION_MS, 'kept to be revalidated')
  t.equal(ttl({ 'cache-control': 'no-cache', etag: '"v1"' }), REVALIDATION_RETENTION_MS)
  t.equal(ttl({}, config({ ttlMs: 5000 })), 5000)
  t.equal(ttl({ expires: httpDate(10) }), 10_000)
  const entry = stored({ 'cache-control': 'max-age=60' }, config({ staleIfErrorMs: 30_000 }))
  t.equal(storeTtlMs(entry, config({ staleIfErrorMs: 30_000 }), at(50)), 40_000, 'counted from now')
  t.equal(storeTtlMs(entry, config({ staleIfErrorMs: 30_000 }), at(95)), 0, 'nothing left')
})

t.test('an entry read back from its bytes decides as the one stored', async (t) => {
  const cfg = config({ staleWhileRevalidateMs: 10_000 })
  const decision = storability(get({ 'accept-encoding': 'gzip' }), answer({ 'cache-control': 'max-age=60', vary: 'accept-encoding', etag: '"v1"' }), cfg, T0)
  if (!decision.storable) throw new Error('expected storable')
  const entry = decodeEntry(encodeEntry({ ...decision.head, body: BODY }))
  if (entry === null) throw new Error('expected an entry')
  const request = get({ 'accept-encoding': 'gzip' })
  t.same([59, 65, 70].map((s) => lookupDecision(entry, request, cfg, at(s)).kind), ['fresh', 'stale-while-revalidate', 'revalidate'])
  t.equal(storeTtlMs(entry, cfg, T0), decision.ttlMs)
})

t.test('entryFreshness: the plain-request shortcut agrees with lookupDecision, and Age with ageSeconds', async (t) => {
  const cases: Array<[string, HeaderFields, CachePolicyConfig]> = [
    ['max-age', { 'cache-control': 'max-age=60' }, config()],
    ['max-age with an upstream Age', { 'cache-control': 'max-age=60', age: '20' }, config()],
    ['s-maxage over max-age', { 'cache-control': 'max-age=5, s-maxage=30' }, config()],
    ['ttl when the upstream is silent', { etag: '"a"' }, config({ ttlMs: 45_000 })]
  ]
  for (const [name, headers, cfg] of cases) {
    const entry = stored(headers, cfg)
    const { plainFreshUntil, ageAtStore } = entryFreshness(entry, cfg)
    t.ok(Number.isFinite(plainFreshUntil), `${name}: fresh for a while`)
    const last = (plainFreshUntil - T0) / 1000 - 0.001
    t.equal(kindAt(entry, last, cfg), 'fresh', `${name}: fresh just before`)
    t.not(kindAt(entry, last + 0.002, cfg), 'fresh', `${name}: not fresh just after`)
    t.equal(Math.floor(ageAtStore + 7), ageSeconds(entry, at(7)), `${name}: the same Age`)
    t.equal(ageFrom({ ageAtStore, plainFreshUntil }, entry, at(7.5)), ageSeconds(entry, at(7.5)), `${name}: ageFrom is ageSeconds`)
  }
  t.equal(entryFreshness(stored({ 'cache-control': 'max-age=60', vary: 'accept-language' }), config()).plainFreshUntil, -Infinity, 'an entry with Vary takes the full decision')
  t.equal(entryFreshness(stored({ 'cache-control': 'no-cache', etag: '"a"' }), config()).plainFreshUntil, -Infinity, 'never fresh')
})

t.test('isPlainRequest: only a request with nothing of its own to decide takes the shortcut', async (t) => {
  t.equal(isPlainRequest(get()), true)
  t.equal(isPlainRequest(get({ accept: 'text/html', 'if-none-match': '"a"' })), true)
  t.equal(isPlainRequest(get({ 'cache-control': 'max-age=0' })), false)
  t.equal(isPlainRequest(get({ pragma: 'no-cache' })), false)
  t.equal(isPlainRequest(get({ authorization: 'Bearer x' })), false)
})
