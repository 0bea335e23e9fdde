// Cache keys: normalization (query order, host case, vary values), one hash tag per route and path, fixed length.
import t from 'tap'
import { cacheKeys, invalidationKey, normalizeTarget, routePrefix, variantKeys, varyValue, type CacheRequest, type HeaderFields } from '../../../src/cache/index.js'

const PREFIX = 'bw:'

const req = (url: string, headers: HeaderFields = {}, method = 'GET'): CacheRequest =>
  ({ method, url, headers: { host: 'api.example.com', ...headers } })

const keys = (url: string, headers: HeaderFields = {}, vary: readonly string[] = [], routeId = 'catalog') =>
  cacheKeys(PREFIX, routeId, req(url, headers), vary)

/** What Redis Cluster hashes: the text between the first `{` and the next `}`, when not empty. */
const hashTag = (key: string): string => {
  const open = key.indexOf('{')
  const close = key.indexOf('}', open + 1)
  if (open === -1 || close === -1 || close === open + 1) return key
  return key.slice(open + 1, close)
}

/** CRC16/XMODEM mod 16384: the Redis Cluster slot of a key. */
const slotOf = (key: string): number => {
  let crc = 0
  for (const byte of Buffer.from(hashTag(key))) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % 16384
}

t.test('the slot helper agrees with Redis on its documented examples', async (t) => {
  // From the Redis Cluster specification: both keys hash "user1000".
  t.equal(slotOf('{user1000}.following'), slotOf('{user1000}.followers'))
  t.equal(slotOf('123456789'), 0x31c3 % 16384, 'CRC16/XMODEM check value')
})

t.test('the shape: prefix, route id and path hash in the tag, then the variant hash', async (t) => {
  const { entry, lock, invalidation } = keys('/items/1?color=red')
  t.match(entry, /^bw:\{catalog:[A-Za-z0-9_-]{43}\}:[A-Za-z0-9_-]{43}$/)
  t.equal(lock, `${entry}:lock`)
  t.match(invalidation, /^bw:\{catalog:[A-Za-z0-9_-]{43}\}:inv$/)
  t.notOk(entry.includes('items') || entry.includes('red') || entry.includes('example'), 'no URL text in clear')
})

t.test('fixed length whatever the URL and headers', async (t) => {
  const short = keys('/')
  const long = keys(`/${'a'.repeat(5000)}?${'q=1&'.repeat(500)}`, { 'accept-language': 'x'.repeat(900) }, ['accept-language'])
  t.equal(long.entry.length, short.entry.length)
  t.equal(long.lock.length, short.lock.length)
  t.equal(long.invalidation.length, short.invalidation.length)
})

t.test('query parameters are sorted by name, stably for repeated names', async (t) => {
  t.equal(keys('/items?b=2&a=1').entry, keys('/items?a=1&b=2').entry)
  t.equal(keys('/items?z=0&a=1&m=5&a=2').entry, keys('/items?a=1&a=2&m=5&z=0').entry)
  t.not(keys('/items?a=1&a=2').entry, keys('/items?a=2&a=1').entry, 'the order of one name\'s values is kept')
  t.equal(keys('/items?a=1&&b=2&').entry, keys('/items?a=1&b=2').entry, 'empty pieces dropped')
  t.equal(keys('/items?').entry, keys('/items').entry)
  t.not(keys('/items?a').entry, keys('/items?a=').entry, 'a name without = is not a name with an empty value')
  t.not(keys('/items?a=%20').entry, keys('/items?a=+').entry, 'no percent-decoding')
  t.not(keys('/items?b=1').entry, keys('/items?B=1').entry, 'names are case-sensitive')
})

t.test('normalizeTarget is the target a stored entry answers', async (t) => {
  t.equal(normalizeTarget('/items?b=2&a=1&a=0'), '/items?a=1&a=0&b=2')
  t.equal(normalizeTarget('/items?&'), '/items')
  t.equal(normalizeTarget('/items'), '/items')
  t.equal(normalizeTarget('/Items'), '/Items', 'paths are case-sensitive')
})

t.test('the host is lower-cased and keeps its port', async (t) => {
  t.equal(keys('/x', { host: 'API.Example.COM' }).entry, keys('/x').entry)
  t.not(keys('/x', { host: 'api.example.com:8080' }).entry, keys('/x').entry)
  t.not(keys('/x', { host: 'other.example.com' }).entry, keys('/x').entry)
  t.ok(keys('/x', { host: undefined }).entry.startsWith(routePrefix(PREFIX, 'catalog')), 'no Host at all is a host too')
})

t.test('GET and HEAD share a key', async (t) => {
  t.equal(cacheKeys(PREFIX, 'catalog', req('/x', {}, 'HEAD'), []).entry, keys('/x').entry)
})

t.test('configured vary fields: their values are in the key, other fields are not', async (t) => {
  const vary = ['accept-language', 'x-tenant']
  const en = keys('/x', { 'accept-language': 'en' }, vary)
  t.equal(keys('/x', { 'accept-language': 'en', cookie: 'a=1', 'user-agent': 'curl' }, vary).entry, en.entry)
  t.not(keys('/x', { 'accept-language': 'fr' }, vary).entry, en.entry)
  t.not(keys('/x', { 'accept-language': 'en', 'x-tenant': 'acme' }, vary).entry, en.entry)
  t.not(keys('/x', { 'accept-language': '' }, vary).entry, keys('/x', {}, vary).entry, 'empty is not absent')
  t.equal(keys('/x', { 'x-tenant': ['a', 'b'] }, vary).entry, keys('/x', { 'x-tenant': 'a, b' }, vary).entry, 'repeated lines join')
  t.equal(keys('/x', { 'accept-language': 'en' }, [...vary].reverse()).entry, en.entry, 'the config order does not matter')
  t.not(keys('/x', { 'accept-language': 'en' }, []).entry, en.entry, 'a route without vary keys differently')
})

t.test('every variant of one path shares the hash tag, and so the Redis Cluster slot', async (t) => {
  const vary = ['accept-language']
  const variants = [
    keys('/items/1', {}, vary),
    keys('/items/1?page=2', {}, vary),
    keys('/items/1?sort=desc&page=9', {}, vary),
    keys('/items/1', { 'accept-language': 'de' }, vary),
    keys('/items/1', { host: 'API.EXAMPLE.COM', 'accept-language': 'fr' }, vary)
  ]
  const tags = new Set(variants.flatMap(({ entry, lock, invalidation }) => [entry, lock, invalidation].map(hashTag)))
  t.equal(tags.size, 1)
  t.equal(new Set(variants.map(({ entry }) => entry)).size, variants.length, 'but each has its own entry')
  const slots = new Set(variants.flatMap(({ entry, lock, invalidation }) => [slotOf(entry), slotOf(lock), slotOf(invalidation)]))
  t.equal(slots.size, 1)
})

t.test('different paths, hosts and routes get different tags', async (t) => {
  const tag = hashTag(keys('/items/1').entry)
  t.not(hashTag(keys('/items/2').entry), tag)
  t.not(hashTag(keys('/items/1/').entry), tag)
  t.not(hashTag(keys('/items/1', { host: 'shop.example.com' }).entry), tag)
  t.not(hashTag(keys('/items/1', {}, [], 'orders').entry), tag)
  // Spread over the cluster: 200 paths land in many slots.
  const slots = new Set(Array.from({ length: 200 }, (_, i) => slotOf(keys(`/items/${i}`).entry)))
  t.ok(slots.size > 150, `${slots.size} slots for 200 paths`)
})

t.test('invalidationKey: the marker of a path without a request at hand', async (t) => {
  const { invalidation } = keys('/items/1?page=2')
  t.equal(invalidationKey(PREFIX, 'catalog', 'api.example.com', '/items/1'), invalidation)
  t.equal(invalidationKey(PREFIX, 'catalog', 'API.example.com', '/items/1?any=thing'), invalidation, 'host case and query do not matter')
  t.not(invalidationKey(PREFIX, 'catalog', 'api.example.com', '/items/2'), invalidation)
})

t.test('routePrefix starts every key of its route and no key of another', async (t) => {
  const prefix = routePrefix(PREFIX, 'cat')
  t.equal(prefix, 'bw:{cat:')
  const own = keys('/x', {}, [], 'cat')
  for (const key of [own.entry, own.lock, own.invalidation, invalidationKey(PREFIX, 'cat', 'h', '/y')]) t.ok(key.startsWith(prefix))
  for (const routeId of ['catalog', 'cat-2', 'cat_b']) t.notOk(keys('/x', {}, [], routeId).entry.startsWith(prefix), routeId)
  t.notOk(cacheKeys('other:', 'cat', req('/x'), []).entry.startsWith(prefix), 'another key prefix')
})

t.test('varyValue: what RFC 9111 section 4.1 lets a cache normalise, and nothing more', async (t) => {
  const value = (name: string, field: string | string[] | undefined): string | undefined => varyValue({ [name]: field }, name)
  t.equal(value('accept-language', 'en, de;q=0.5'), 'en,de;q=0.5')
  t.equal(value('accept-language', ' EN ,  De ; q=0.5 ,'), 'en,de;q=0.5', 'whitespace, case and an empty item')
  t.equal(value('accept-language', ['en', 'de']), 'en,de', 'repeated lines are one list')
  t.equal(value('accept-encoding', 'GZIP, br'), 'gzip,br')
  t.equal(value('accept-charset', 'UTF-8'), 'utf-8')
  t.equal(value('accept-language', 'de, en'), 'de,en', 'the order is kept')
  t.equal(value('accept', 'Text/HTML ; Level=1, */*'), 'Text/HTML;Level=1,*/*', 'Accept: whitespace only, its parameter values may be case-sensitive')
  t.equal(value('accept', 'text/html;x=" a , b "'), 'text/html;x=" a , b "', 'a quoted string keeps its whitespace')
  t.equal(value('x-tenant', '  Acme, Corp '), 'Acme, Corp', 'any other field: only its ends')
  t.equal(value('x-tenant', ''), '', 'empty is not absent')
  t.equal(value('x-tenant', undefined), undefined)
})

t.test('variantKeys: under the URL\'s key and in its slot, one per normalised value of the Vary fields', async (t) => {
  const url = keys('/items/1?page=2')
  const variant = (headers: HeaderFields, names = ['accept-language']) => variantKeys(url, names, req('/items/1?page=2', headers).headers)
  const en = variant({ 'accept-language': 'en, de' })
  t.match(en.entry, new RegExp(`^${url.entry.replace(/[{}]/g, '\\$&')}:v:[A-Za-z0-9_-]{43}$`))
  t.same({ primary: en.primary, lock: en.lock, invalidation: en.invalidation }, { primary: url.entry, lock: `${en.entry}:lock`, invalidation: url.invalidation })
  t.equal(url.primary, url.entry, 'a URL\'s own keys are primary')
  t.equal(slotOf(en.entry), slotOf(url.entry))
  t.equal(variant({ 'accept-language': 'EN,de' }).entry, en.entry, 'normalised')
  t.not(variant({ 'accept-language': 'de' }).entry, en.entry)
  t.not(variant({}).entry, variant({ 'accept-language': '' }).entry, 'absent is not empty')
  const two = { 'accept-language': 'en', 'accept-encoding': 'gzip' }
  t.equal(variant(two, ['accept-language', 'accept-encoding']).entry, variant(two, ['accept-encoding', 'accept-language']).entry, 'the names\' order does not matter')
  t.not(variant(two, ['accept-language']).entry, variant(two, ['accept-language', 'accept-encoding']).entry, 'the names do')
  t.equal(variantKeys(en, ['accept-language'], { 'accept-language': 'de' }).entry, variant({ 'accept-language': 'de' }).entry, 'from a variant\'s keys too')
})

t.test('the route\'s vary values are normalised as the response\'s are', async (t) => {
  t.equal(keys('/x', { 'accept-language': 'en, DE' }, ['accept-language']).entry, keys('/x', { 'accept-language': 'en,de' }, ['accept-language']).entry)
})
