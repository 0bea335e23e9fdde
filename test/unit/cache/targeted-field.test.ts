// Targeted cache-control fields (RFC 9213): which field is read, what a valid value is, how the policy uses it.
import t from 'tap'
import {
  lookupDecision, storability, targetedCacheControl, targetedFields, type CachePolicyConfig, type CacheRequest, type HeaderFields
} from '../../../src/cache/index.js'

t.test('targetedFields: a route\'s own field first, CDN-Cache-Control after it, once', async (t) => {
  t.same(targetedFields(undefined), ['cdn-cache-control'])
  t.same(targetedFields('cdn-cache-control'), ['cdn-cache-control'])
  t.same(targetedFields('breakwater-cache-control'), ['breakwater-cache-control', 'cdn-cache-control'])
})

t.test('targetedCacheControl: a Structured Field Dictionary, as Cache-Control directives', async (t) => {
  const read = (value: string): string | undefined => targetedCacheControl({ 'cdn-cache-control': value }, ['cdn-cache-control'])
  t.equal(read('max-age=60'), 'max-age=60')
  t.equal(read('max-age=60,s-maxage=30 ,  private'), 'max-age=60, s-maxage=30, private', 'whitespace around commas')
  t.equal(read('no-store=?1, max-age=5'), 'no-store, max-age=5', '?1 is the directive without a value')
  t.equal(read('no-store=?0, max-age=5'), 'max-age=5', '?0 is its absence')
  t.equal(read('max-age=60;ext=1, private="set-cookie";a, x=:aGk=:, y=1.5, z=(a "b"), *w=tok/en:1'),
    'max-age=60, private="set-cookie", x=:aGk=:, y=1.5, z=(a "b"), *w=tok/en:1', 'parameters dropped, every item type kept')
  t.equal(read('  max-age=1  '), 'max-age=1')
  for (const invalid of ['', 'Max-Age=60', 'max-age=', 'max-age=60,', ',max-age=60', 'max-age=60;', 'max age', 'max-age="unterminated',
    'max-age=1234567890123456', 'max-age=(1 2', '1max-age', 'max-age=60 private']) {
    t.equal(read(invalid), undefined, JSON.stringify(invalid))
  }
  const both = { 'cdn-cache-control': 'max-age=1', 'own-cache-control': 'max-age=2' }
  t.equal(targetedCacheControl(both, ['own-cache-control', 'cdn-cache-control']), 'max-age=2', 'the first field named')
  t.equal(targetedCacheControl({ ...both, 'own-cache-control': 'BAD' }, ['own-cache-control', 'cdn-cache-control']), 'max-age=1',
    'an invalid first field gives way to the next')
  t.equal(targetedCacheControl({ 'cache-control': 'max-age=1' }, ['cdn-cache-control']), undefined)
})

const T0 = Date.parse('2026-12-06T12:00:00Z')
const cfg = (extra: Partial<CachePolicyConfig> = {}): CachePolicyConfig =>
  ({ ttlMs: null, maxObjectSizeBytes: 1024, staleWhileRevalidateMs: 0, staleIfErrorMs: 0, vary: [], ...extra })
const get: CacheRequest = { method: 'GET', url: '/x', headers: { host: 'example.com' } }

/** A response with `headers` stored at T0 and looked up `seconds` later: the bypass reason, or the lookup's kind. */
function fate (headers: HeaderFields, seconds: number, config = cfg()): string {
  const decision = storability(get, { status: 200, headers: { date: new Date(T0).toUTCString(), ...headers } }, config, T0)
  if (!decision.storable) return decision.reason
  return lookupDecision(decision.head, get, config, T0 + seconds * 1000).kind
}

t.test('the policy: a valid targeted field replaces Cache-Control, Expires and Pragma; an invalid one changes nothing', async (t) => {
  t.equal(fate({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' }, 30), 'fresh')
  t.equal(fate({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' }, 30), 'no-store')
  t.equal(fate({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'private' }, 30), 'private')
  t.equal(fate({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'max-age=10' }, 30), 'revalidate', 'its max-age is the lifetime')
  t.equal(fate({ expires: new Date(T0 + 60_000).toUTCString(), 'cdn-cache-control': 'max-age=10' }, 30), 'revalidate', 'Expires is ignored')
  t.equal(fate({ pragma: 'no-cache', 'cdn-cache-control': 'max-age=60' }, 30), 'fresh', 'Pragma is ignored')
  t.equal(fate({ 'cdn-cache-control': 'public' }, 30, cfg({ ttlMs: 60_000 })), 'fresh', 'no freshness in it: the route\'s ttl applies')
  t.equal(fate({ expires: new Date(T0 + 60_000).toUTCString(), 'cdn-cache-control': 'public' }, 30, cfg({ ttlMs: 10_000 })), 'revalidate',
    'nor does an Expires it shuts out stop the ttl')
  t.equal(fate({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'Max-Age=0' }, 30), 'fresh', 'invalid: Cache-Control decides')
  t.equal(fate({ 'cache-control': 'no-store', 'bw-cache-control': 'max-age=60' }, 30, cfg({ targetedField: 'bw-cache-control' })), 'fresh')
  t.equal(fate({ 'cache-control': 'no-store', 'bw-cache-control': 'max-age=60' }, 30), 'no-store', 'another route\'s own field means nothing here')
})
