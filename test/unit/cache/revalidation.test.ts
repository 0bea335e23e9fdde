// Which stored response a 304 selects (RFC 9111 section 4.3.4): `revalidated` returns null when it selects none.
import t from 'tap'
import { revalidated, storability, type CachePolicyConfig, type CacheRequest, type HeaderFields } from '../../../src/cache/index.js'

const T0 = Date.parse('2026-12-06T12:00:00Z')
const LAST_MODIFIED = 'Sun, 06 Nov 1994 08:49:37 GMT'
const cfg: CachePolicyConfig = { ttlMs: 60_000, maxObjectSizeBytes: 1024, staleWhileRevalidateMs: 0, staleIfErrorMs: 0, vary: [] }
const get: CacheRequest = { method: 'GET', url: '/x', headers: { host: 'example.com' } }

/** Whether a 304 with `notModified`'s fields selects a stored 200 that had `stored`'s. */
function selects (stored: HeaderFields, notModified: HeaderFields): boolean {
  const decision = storability(get, { status: 200, headers: { date: new Date(T0).toUTCString(), ...stored } }, cfg, T0)
  if (!decision.storable) throw new Error(decision.reason)
  return revalidated({ ...decision.head, body: Buffer.from('x') }, get, { status: 304, headers: notModified }, cfg, T0 + 120_000) !== null
}

t.test('a 304 selects the stored response by its validators, or by having none when it has none', async (t) => {
  t.ok(selects({ etag: '"a"' }, { etag: '"a"' }), 'the same strong ETag')
  t.notOk(selects({ etag: '"a"' }, { etag: '"b"' }), 'another strong ETag: none selected')
  t.ok(selects({ etag: 'W/"a"' }, { etag: 'W/"a"' }), 'the same weak ETag')
  t.ok(selects({ 'last-modified': LAST_MODIFIED }, { 'last-modified': LAST_MODIFIED }), 'the same Last-Modified')
  t.notOk(selects({ 'last-modified': LAST_MODIFIED }, { 'last-modified': 'Mon, 07 Nov 1994 08:49:37 GMT' }), 'another Last-Modified')
  t.notOk(selects({ 'last-modified': LAST_MODIFIED }, {}), 'no validator while the stored one has Last-Modified (Python\'s http.server)')
  t.notOk(selects({ etag: '"a"' }, {}), 'no validator while the stored one has an ETag')
  t.ok(selects({}, {}), 'neither has a validator: the one stored response is selected')
})
