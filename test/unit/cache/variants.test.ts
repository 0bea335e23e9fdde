// The variant index over the memory store with a fake clock: its format, expiry, one write per URL at a time, option checks.
import t from 'tap'
import {
  cacheKeys, decodeVariantIndex, encodeEntry, encodeVariantIndex, MemoryStore, storability, TieredStore, VariantStore,
  VARIANT_INDEX_FORMAT_VERSION, type CacheEntry, type CacheKeys, type CacheStore, type HeaderFields
} from '../../../src/cache/index.js'

const POLICY = { ttlMs: null, maxObjectSizeBytes: 1024, staleWhileRevalidateMs: 0, staleIfErrorMs: 0, vary: [] }
const T0 = Date.parse('2025-01-01T00:00:00Z')

const lang = (language: string): HeaderFields => ({ host: 'api.example.com', 'accept-language': language })

/** The answer to GET /x in `language`, with `Vary: Accept-Language`. */
function entryIn (language: string, now = T0): CacheEntry {
  const decision = storability({ method: 'GET', url: '/x', headers: lang(language) }, { status: 200, headers: { 'cache-control': 'max-age=60', vary: 'Accept-Language' } }, POLICY, now)
  if (!decision.storable) throw new Error(decision.reason)
  return { ...decision.head, body: Buffer.from(language) }
}

const KEYS: CacheKeys = cacheKeys('bw:', 'r', { method: 'GET', url: '/x', headers: { host: 'api.example.com' } }, [])

const rig = (maxVariants: number, store?: CacheStore): { clock: { now: number }, store: CacheStore, variants: VariantStore } => {
  const clock = { now: T0 }
  const memory = store ?? new MemoryStore({ now: () => clock.now })
  return { clock, store: memory, variants: new VariantStore(memory, { maxVariants, now: () => clock.now }) }
}

const indexOf = async (store: CacheStore): Promise<ReturnType<typeof decodeVariantIndex>> => {
  const [value] = await store.get([KEYS.primary])
  return value === null || value === undefined ? null : decodeVariantIndex(value)
}

t.test('maxVariants must be a positive integer', async (t) => {
  for (const maxVariants of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => new VariantStore(new MemoryStore(), { maxVariants }), { name: 'RangeError', message: `expected options.maxVariants to be a positive integer, got ${maxVariants}` })
  }
  t.equal(new VariantStore(new MemoryStore(), { maxVariants: 1 }).maxVariants, 1)
})

t.test('the index round-trips; anything else decodes as null and never throws', async (t) => {
  const index = { path: '/x', names: ['accept-language'], variants: [{ id: 'abc', expiresAt: T0 }] }
  const bytes = encodeVariantIndex(index)
  t.same(bytes.subarray(0, 3), Buffer.from([0x42, 0x56, VARIANT_INDEX_FORMAT_VERSION]), '`BV` and the version')
  t.same(decodeVariantIndex(bytes), index)
  const json = (value: unknown): Buffer => Buffer.concat([Buffer.from([0x42, 0x56, VARIANT_INDEX_FORMAT_VERSION]), Buffer.from(JSON.stringify(value))])
  const others: Array<[string, Buffer]> = [
    ['an entry', encodeEntry(entryIn('en'))],
    ['too short', Buffer.from('BV')],
    ['another version', Buffer.concat([Buffer.from([0x42, 0x56, VARIANT_INDEX_FORMAT_VERSION + 1]), bytes.subarray(3)])],
    ['not JSON', Buffer.concat([bytes.subarray(0, 3), Buffer.from('{"path":')])],
    ['null', json(null)],
    ['no names', json({ ...index, names: [] })],
    ['a name that is not a string', json({ ...index, names: [1] })],
    ['no path', json({ names: index.names, variants: [] })],
    ['a variant without expiry', json({ ...index, variants: [{ id: 'abc' }] })],
    ['a variant that is not an object', json({ ...index, variants: ['abc'] })],
    ['variants not a list', json({ ...index, variants: {} })]
  ]
  for (const [what, value] of others) t.equal(decodeVariantIndex(value), null, what)
})

t.test('a value under the URL\'s key that looks like an index but is not one is read as it is (an entry decodes it as a miss)', async (t) => {
  const { store, variants } = rig(16)
  const garbage = Buffer.from([0x42, 0x56, VARIANT_INDEX_FORMAT_VERSION + 1, 0x7b])
  await store.set(KEYS.primary, garbage, 60_000)
  t.same(await variants.get(KEYS, lang('en')), { keys: KEYS, value: garbage, marker: null })
})

t.test('expired variants leave the count, and the index lives as long as its longest-lived variant', async (t) => {
  const { clock, store, variants } = rig(2)
  await variants.set(KEYS, lang('en'), entryIn('en'), 1_000)
  await variants.set(KEYS, lang('de'), entryIn('de'), 60_000)
  clock.now += 1_000
  await variants.set(KEYS, lang('fr'), entryIn('fr', clock.now), 5_000)
  t.equal((await indexOf(store))?.variants.length, 2, 'en expired: de and fr fit')
  t.not((await variants.get(KEYS, lang('de'))).value, null, 'de was not evicted')
  clock.now += 5_000
  t.not(await indexOf(store), null, 'fr expired, de has not')
  clock.now += 54_000
  t.equal(await indexOf(store), null, 'gone with de')
})

t.test('writes to one URL go one at a time: concurrent variants all reach the index', async (t) => {
  const { store, variants } = rig(16)
  const languages = ['en', 'de', 'fr', 'it', 'nl']
  await Promise.all(languages.map(async (language) => { await variants.set(KEYS, lang(language), entryIn(language), 60_000) }))
  t.equal((await indexOf(store))?.variants.length, languages.length)
  for (const language of languages) t.same((await variants.get(KEYS, lang(language))).value?.subarray(-2), Buffer.from(language), language)
})

t.test('a failed write rejects its caller only: the next write to the URL still runs', async (t) => {
  const memory = new MemoryStore()
  let failNext = true
  // A real store that fails one set, as Redis does when a command times out.
  const flaky: CacheStore = {
    kind: 'memory',
    get: memory.get.bind(memory),
    set: async (key, value, ttlMs) => {
      if (failNext) {
        failNext = false
        throw new Error('Redis did not answer SET within 100 ms')
      }
      await memory.set(key, value, ttlMs)
    },
    delete: memory.delete.bind(memory),
    lock: memory.lock.bind(memory),
    unlock: memory.unlock.bind(memory),
    purge: memory.purge.bind(memory),
    health: memory.health.bind(memory),
    close: memory.close.bind(memory)
  }
  const { variants } = rig(16, flaky)
  const first = variants.set(KEYS, lang('en'), entryIn('en'), 60_000)
  const second = variants.set(KEYS, lang('de'), entryIn('de'), 60_000)
  await t.rejects(first, /did not answer SET/)
  await second
  t.not((await variants.get(KEYS, lang('de'))).value, null)
})

t.test('peek answers only when the store knows both the URL\'s key and the variant at once', async (t) => {
  const far = new MemoryStore()
  await new VariantStore(far, { maxVariants: 16 }).set(KEYS, lang('en'), entryIn('en'), 60_000)
  const tier = new TieredStore(far, { maxEntries: 100, ttlMs: 1_000 })
  const variants = new VariantStore(tier, { maxVariants: 16 })
  t.equal(variants.peek(KEYS, lang('en')), undefined, 'the tier knows nothing yet')
  await tier.get([KEYS.entry, KEYS.invalidation])
  t.equal(variants.peek(KEYS, lang('en')), undefined, 'it knows the index, not the variant')
  const found = await variants.get(KEYS, lang('en'))
  t.same(variants.peek(KEYS, lang('en')), found, 'now it knows both')
})

t.test('what a lookup remembers (decoded indexes, variant keys) starts over past 10,000 URLs and stays right', async (t) => {
  const { store, variants } = rig(16)
  const urls = Array.from({ length: 10_001 }, (_, i) => cacheKeys('bw:', 'r', { method: 'GET', url: `/x${i}`, headers: { host: 'h' } }, []))
  const index = encodeVariantIndex({ path: '/x', names: ['accept-language'], variants: [] })
  for (const keys of urls) await store.set(keys.primary, index, 60_000)
  const first = urls[0] as CacheKeys
  await variants.set(first, lang('en'), entryIn('en'), 60_000)
  for (const keys of urls) variants.peek(keys, lang('en'))
  t.same(variants.peek(first, lang('en'))?.value?.subarray(-2), Buffer.from('en'), 'the first URL, looked up again after the memos started over')
  t.equal(variants.peek(urls[10_000] as CacheKeys, lang('en'))?.value, null)
})
