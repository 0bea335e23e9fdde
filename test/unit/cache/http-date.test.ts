// The strict HTTP-date parser, and what the policy makes of an Expires that is not one (RFC 9111 section 5.3).
import t from 'tap'
import {
  lookupDecision, parseHttpDate, revalidated, storability, type CachePolicyConfig, type CacheRequest, type HeaderFields
} from '../../../src/cache/index.js'

const NOW = Date.parse('2026-12-06T12:00:00Z')
const SUNDAY = Date.parse('1994-11-06T08:49:37Z')

t.test('the three formats of RFC 9110 section 5.6.7 are read; anything near them is not', async (t) => {
  t.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', NOW), SUNDAY, 'IMF-fixdate')
  t.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', NOW), SUNDAY, 'RFC 850')
  t.equal(parseHttpDate('Sun Nov  6 08:49:37 1994', NOW), SUNDAY, 'asctime, a one-digit day after a space')
  t.equal(parseHttpDate('Sun Nov 16 08:49:37 1994', NOW), Date.parse('1994-11-16T08:49:37Z'), 'asctime, a two-digit day')
  t.equal(parseHttpDate('Thu, 31 Dec 2026 23:59:60 GMT', NOW), Date.parse('2027-01-01T00:00:00Z'), 'a leap second')
  t.equal(parseHttpDate('Mon, 01 Jan 0001 00:00:00 GMT', NOW), Date.parse('0001-01-01T00:00:00Z'), 'a year below 100 is that year')
  for (const invalid of [
    '2026-12-06T12:00:00Z', // ISO 8601
    'Sun, 06-Nov-1994 08:49:37 GMT', // dashes in an IMF-fixdate
    'Sun 06 Nov 1994 08:49:37 GMT', // no comma
    'Sun, 06 Nov 1994 8:49:37 GMT', // a one-digit hour
    'Sun, 6 Nov 1994 08:49:37 GMT', // a one-digit day
    'Sun, 06 Nov 1994 08:49:37 UTC', // UTC, not GMT
    'Sun, 06 Nov  1994 08:49:37 GMT', // a doubled space
    ' Sun, 06 Nov 1994 08:49:37 GMT', // a leading space
    'sun, 06 nov 1994 08:49:37 gmt', // case: the format is case-sensitive
    'Sun, 31 Feb 1994 08:49:37 GMT', // no such day
    'Sun, 00 Nov 1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 24:00:00 GMT',
    'Sun, 06 Nov 1994 08:60:00 GMT',
    'Sun, 06 Nov 1994 08:49:61 GMT',
    'Sund, 06-Nov-94 08:49:37 GMT',
    'Sun Nov 6 08:49:37 1994', // asctime needs two places for the day
    '0',
    ''
  ]) t.equal(parseHttpDate(invalid, NOW), null, JSON.stringify(invalid))
})

t.test('an RFC 850 year more than 50 years ahead is from the century before', async (t) => {
  t.equal(parseHttpDate('Friday, 06-Nov-76 08:49:37 GMT', NOW), Date.parse('2076-11-06T08:49:37Z'), '50 years ahead: this century')
  t.equal(parseHttpDate('Saturday, 06-Nov-77 08:49:37 GMT', NOW), Date.parse('1977-11-06T08:49:37Z'), '51 years ahead: the last one')
  t.equal(parseHttpDate('Sunday, 06-Nov-26 08:49:37 GMT', NOW), Date.parse('2026-11-06T08:49:37Z'))
})

const cfg = (extra: Partial<CachePolicyConfig> = {}): CachePolicyConfig =>
  ({ ttlMs: null, maxObjectSizeBytes: 1024, staleWhileRevalidateMs: 0, staleIfErrorMs: 0, vary: [], ...extra })
const get: CacheRequest = { method: 'GET', url: '/x', headers: { host: 'example.com' } }
const date = new Date(NOW).toUTCString()

/** What a response with `headers`, stored at NOW, is 30 s later: a reason it was not stored, or its lookup. */
function fate (headers: HeaderFields, config = cfg()): string {
  const decision = storability(get, { status: 200, headers: { date, ...headers } }, config, NOW)
  if (!decision.storable) return decision.reason
  return lookupDecision({ ...decision.head }, get, config, NOW + 30_000).kind
}

t.test('an Expires that is not an HTTP-date means already expired, whatever Date.parse makes of it', async (t) => {
  const hour = NOW + 3_600_000
  const imf = new Date(hour).toUTCString()
  t.equal(fate({ expires: imf }), 'fresh', 'IMF-fixdate an hour ahead')
  const weekday = new Date(hour).toLocaleDateString('en-US', { weekday: 'long', timeZone: 'UTC' })
  t.equal(fate({ expires: `${weekday}, ${imf.slice(5, 7)}-Dec-26 ${imf.slice(17)}` }), 'fresh', 'RFC 850 an hour ahead')
  for (const invalid of [
    '2026-12-06T13:00:00Z', imf.replace(/ (Dec) /, '-$1-'), imf.replace(',', ''), imf.replace(' 13:', ' 1:').replace(' 13:', ' 1:'),
    imf.replace('GMT', 'UTC'), imf.replace(' Dec ', ' Dec  '), '0'
  ]) {
    t.equal(fate({ expires: invalid }), 'expired', `${JSON.stringify(invalid)} is not stored: nothing could use it`)
    t.equal(fate({ expires: invalid }, cfg({ ttlMs: 600_000 })), 'expired', `${JSON.stringify(invalid)} beats the route's ttl`)
    t.equal(fate({ expires: invalid, etag: '"v"' }), 'revalidate', `${JSON.stringify(invalid)} with a validator: stored, stale at once`)
  }
})

t.test('a 304 with an invalid Expires leaves the refreshed entry expired', async (t) => {
  const decision = storability(get, { status: 200, headers: { date, etag: '"v"', 'cache-control': 'max-age=60' } }, cfg(), NOW)
  if (!decision.storable) throw new Error(decision.reason)
  const entry = { ...decision.head, body: Buffer.from('x') }
  const refresh = revalidated(entry, get, { status: 304, headers: { etag: '"v"', 'cache-control': 'public', expires: '2030-01-01' } }, cfg(), NOW + 120_000)
  t.equal(refresh?.entry.headers.expires, '2030-01-01', 'stored as sent')
  t.equal(lookupDecision(refresh?.entry ?? entry, get, cfg(), NOW + 121_000).kind, 'revalidate')
})
