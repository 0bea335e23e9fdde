// The CacheStore contract: the same cases run against every store (memory, Redis, Redis Cluster), as undici's cache-store-test-utils does.
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { encodeEntry, type CacheEntry } from '../../src/cache/entry.js'
import { cacheKeys, routePrefix, type CacheKeys, type HeaderFields } from '../../src/cache/key.js'
import { storability } from '../../src/cache/policy.js'
import type { CacheStore } from '../../src/cache/store.js'
import { decodeVariantIndex, VariantStore } from '../../src/cache/variants.js'

/** One operation a store reported through its `onOperation` option. */
export interface ReportedOperation {
  readonly operation: 'get' | 'set' | 'delete'
  readonly seconds: number
  readonly error?: Error
}

/** A fresh store for one case, with what the contract needs around it. */
export interface StoreUnderTest {
  readonly store: CacheStore
  /** What the store reported through `onOperation` (the factory wires it), in order. */
  readonly operations: ReportedOperation[]
  /**
   * Lets `ms` of the store's time pass, then resolves once `gone()` holds: a fake clock jumps and `gone` must hold at
   * once; a real Redis is polled until a deadline.
   */
  readonly elapse: (ms: number, gone: () => Promise<boolean>) => Promise<void>
}

export interface StoreContract {
  /** Builds a store for one case; whatever it opens is closed in `t.teardown`. */
  readonly make: (t: Test) => Promise<StoreUnderTest>
  /** The `kind` the store must report. */
  readonly kind: CacheStore['kind']
}

let namespaces = 0

/**
 * A key namespace of its own for each case, so cases sharing one Redis never see each other's keys. `{ns}` is a hash
 * tag: keys written as `${tag}:...` share one slot, as the cache's keys for one request do.
 */
function namespace (): { ns: string, tag: string } {
  const ns = `ct${++namespaces}-${randomBytes(4).toString('hex')}`
  return { ns, tag: `{${ns}}` }
}

const buf = (text: string): Buffer => Buffer.from(text, 'utf8')

const POLICY = { ttlMs: null, maxObjectSizeBytes: 1024, staleWhileRevalidateMs: 0, staleIfErrorMs: 0, vary: [] }

/** A stored response to GET `url` with `headers` that says `vary` (none when empty), as the cache would store it. */
function entryFor (url: string, headers: HeaderFields, vary: string, body: string): CacheEntry {
  const request = { method: 'GET', url, headers: { host: 'api.example.com', ...headers } }
  const response = { status: 200, headers: { 'cache-control': 'max-age=60', ...(vary === '' ? {} : { vary }) } }
  const decision = storability(request, response, POLICY, Date.now())
  if (!decision.storable) throw new Error(`expected a storable response, got ${decision.reason}`)
  return { ...decision.head, body: buf(body) }
}

/** The variant cases' URL under a key prefix of the case's own. */
function urlKeys (ns: string, url: string): CacheKeys {
  return cacheKeys(`${ns}:`, 'r', { method: 'GET', url, headers: { host: 'api.example.com' } }, [])
}

/** Registers the contract's cases under `t`, each against a fresh store from `contract.make`. */
export function storeContract (t: Test, contract: StoreContract): void {
  const { make, kind } = contract

  t.test('reports its kind and starts UP', async (t) => {
    const { store } = await make(t)
    t.equal(store.kind, kind)
    t.equal(store.health().status, 'UP')
  })

  t.test('absent keys read as null, in order; no keys reads as none', async (t) => {
    const { store } = await make(t)
    const { tag } = namespace()
    t.same(await store.get([`${tag}:a`, `${tag}:b`, `${tag}:c`]), [null, null, null])
    t.same(await store.get([]), [])
  })

  t.test('a round trip is byte-exact: every byte value, an empty value, 1 MiB', async (t) => {
    const { store } = await make(t)
    const { tag } = namespace()
    const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    // Random bytes contain CR LF sequences and invalid UTF-8, which a text round trip would mangle.
    const mebibyte = randomBytes(1024 * 1024)
    await store.set(`${tag}:bytes`, everyByte, 60_000)
    await store.set(`${tag}:empty`, Buffer.alloc(0), 60_000)
    await store.set(`${tag}:big`, mebibyte, 60_000)
    const [bytes, empty, big] = await store.get([`${tag}:bytes`, `${tag}:empty`, `${tag}:big`])
    t.ok(Buffer.isBuffer(bytes) && bytes.equals(everyByte), 'all 256 byte values')
    t.ok(Buffer.isBuffer(empty), 'an empty value is a Buffer, not null')
    t.equal(empty?.length, 0)
    t.ok(Buffer.isBuffer(big) && big.equals(mebibyte), '1 MiB of random bytes')
  })

  t.test('a multi-key get keeps the order of its keys, with absent ones as null', async (t) => {
    const { store } = await make(t)
    const { tag } = namespace()
    for (const name of ['a', 'b', 'c']) await store.set(`${tag}:${name}`, buf(`value ${name}`), 60_000)
    const values = await store.get([`${tag}:c`, `${tag}:missing`, `${tag}:a`, `${tag}:b`, `${tag}:a`])
    t.same(values.map((value) => value?.toString('utf8') ?? null), ['value c', null, 'value a', 'value b', 'value a'])
  })

  t.test('a set replaces the value and the TTL', async (t) => {
    const { store, elapse } = await make(t)
    const { tag } = namespace()
    await store.set(`${tag}:k`, buf('first'), 500)
    await store.set(`${tag}:k`, buf('second'), 60_000)
    t.same((await store.get([`${tag}:k`]))[0], buf('second'))
    await store.set(`${tag}:short`, buf('x'), 500)
    await elapse(500, async () => (await store.get([`${tag}:short`]))[0] === null)
    t.same((await store.get([`${tag}:k`]))[0], buf('second'), 'the longer TTL of the second set holds')
  })

  t.test('an entry expires after its TTL, and only it', async (t) => {
    const { store, elapse } = await make(t)
    const { tag } = namespace()
    await store.set(`${tag}:short`, buf('short'), 500)
    await store.set(`${tag}:long`, buf('long'), 60_000)
    t.same(await store.get([`${tag}:short`, `${tag}:long`]), [buf('short'), buf('long')], 'both are there at first')
    await elapse(500, async () => (await store.get([`${tag}:short`]))[0] === null)
    t.same(await store.get([`${tag}:short`, `${tag}:long`]), [null, buf('long')])
  })

  t.test('a TTL that is not a positive number rejects and stores nothing', async (t) => {
    const { store } = await make(t)
    const { tag } = namespace()
    for (const ttl of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await t.rejects(store.set(`${tag}:k`, buf('v'), ttl), RangeError, `set with ttl ${ttl}`)
      await t.rejects(store.lock(`${tag}:lock`, ttl), /expected ttlMs to be a positive finite number/, `lock with ttl ${ttl}`)
    }
    t.same(await store.get([`${tag}:k`, `${tag}:lock`]), [null, null])
    t.equal(store.health().status, 'UP', 'a caller bug is not a store failure')
    // Redis' PX takes only an integer: the store rounds up rather than fail.
    await store.set(`${tag}:k`, buf('v'), 60_000.5)
    t.equal(await store.lock(`${tag}:lock`, 60_000.5), true)
    t.same((await store.get([`${tag}:k`]))[0], buf('v'), 'a fractional TTL is accepted')
  })

  t.test('delete removes the keys given, absent ones included, and nothing else', async (t) => {
    const { store } = await make(t)
    const { ns, tag } = namespace()
    // Another hash tag: delete, unlike get, takes keys from different slots.
    const elsewhere = `{${ns}-elsewhere}:d`
    for (const name of ['a', 'b', 'c']) await store.set(`${tag}:${name}`, buf(name), 60_000)
    await store.set(elsewhere, buf('d'), 60_000)
    await store.delete([`${tag}:a`, `${tag}:c`, `${tag}:missing`, elsewhere])
    t.same(await store.get([`${tag}:a`, `${tag}:b`, `${tag}:c`]), [null, buf('b'), null])
    t.same(await store.get([elsewhere]), [null])
    await store.delete([])
    t.same((await store.get([`${tag}:b`]))[0], buf('b'), 'deleting no keys is a no-op')
  })

  t.test('a lock is exclusive until unlocked', async (t) => {
    const { store } = await make(t)
    const { tag } = namespace()
    const results = await Promise.all(Array.from({ length: 5 }, () => store.lock(`${tag}:lock`, 60_000)))
    t.equal(results.filter(Boolean).length, 1, 'one of five concurrent callers gets it')
    t.equal(await store.lock(`${tag}:lock`, 60_000), false)
    t.equal(await store.lock(`${tag}:other`, 60_000), true, 'another key is another lock')
    await store.unlock(`${tag}:lock`)
    t.equal(await store.lock(`${tag}:lock`, 60_000), true, 'free again after unlock')
    await store.unlock(`${tag}:never-locked`)
  })

  t.test('a lock frees itself after its TTL', async (t) => {
    const { store, elapse } = await make(t)
    const { tag } = namespace()
    t.equal(await store.lock(`${tag}:lock`, 500), true)
    t.equal(await store.lock(`${tag}:lock`, 500), false)
    await elapse(500, async () => (await store.get([`${tag}:lock`]))[0] === null)
    t.equal(await store.lock(`${tag}:lock`, 500), true)
  })

  t.test('purge deletes only keys under the prefix and counts them', async (t) => {
    const { store } = await make(t)
    const { ns } = namespace()
    // Each key its own hash tag: in a Cluster they spread over every master.
    const purged = Array.from({ length: 48 }, (_, i) => `${ns}:users:{u${i}}`)
    const kept = [`${ns}:orders:{o1}`, `${ns}:user:{u1}`, `${ns}-users:{x}`, `x${ns}:users:{y}`]
    for (const key of [...purged, ...kept]) await store.set(key, buf(key), 60_000)
    t.equal(await store.purge(`${ns}:users:`), purged.length)
    for (const key of purged) t.same(await store.get([key]), [null], `${key} is gone`)
    for (const key of kept) t.same(await store.get([key]), [buf(key)], `${key} is kept`)
    t.equal(await store.purge(`${ns}:users:`), 0, 'a second purge finds nothing')
    t.equal(await store.purge(`${ns}:nothing-here:`), 0)
  })

  t.test('purge with a filter deletes only the values it accepts', async (t) => {
    const { store } = await make(t)
    const { ns } = namespace()
    const keys = Array.from({ length: 12 }, (_, i) => `${ns}:f:{k${i}}`)
    for (const [i, key] of keys.entries()) await store.set(key, buf(i % 3 === 0 ? `stale ${i}` : `fresh ${i}`), 60_000)
    const seen: string[] = []
    const count = await store.purge(`${ns}:f:`, (value) => {
      seen.push(value.toString('utf8'))
      return value.toString('utf8').startsWith('stale')
    })
    t.equal(count, 4)
    t.equal(new Set(seen).size, 12, 'the filter saw every matching value')
    for (const [i, key] of keys.entries()) t.same(await store.get([key]), i % 3 === 0 ? [null] : [buf(`fresh ${i}`)], key)
  })

  t.test('purge takes the prefix literally: glob characters match only themselves', async (t) => {
    const { store } = await make(t)
    const { ns } = namespace()
    const prefix = `${ns}:a*b?c[d]e\\f:`
    const literal = `${prefix}{1}`
    const lookalikes = [`${ns}:aXXbYc[d]e\\f:{2}`, `${ns}:a*b?cde\\f:{3}`, `${ns}:a*b?cdef:{4}`, `${ns}:a*b?c[d]ef:{5}`]
    for (const key of [literal, ...lookalikes]) await store.set(key, buf(key), 60_000)
    t.equal(await store.purge(prefix), 1)
    t.same(await store.get([literal]), [null])
    for (const key of lookalikes) t.same(await store.get([key]), [buf(key)], `${key} is kept`)
  })

  t.test('gets, sets and deletes are reported with their duration; lock as set, unlock as delete', async (t) => {
    const { store, operations } = await make(t)
    const { tag } = namespace()
    operations.length = 0
    await store.set(`${tag}:k`, buf('v'), 60_000)
    await store.get([`${tag}:k`])
    await store.delete([`${tag}:k`])
    await store.lock(`${tag}:lock`, 60_000)
    await store.unlock(`${tag}:lock`)
    t.same(operations.map((op) => op.operation), ['set', 'get', 'delete', 'set', 'delete'])
    for (const op of operations) {
      t.ok(op.seconds >= 0 && op.seconds < 5, `${op.operation} took ${op.seconds} s`)
      t.equal(op.error, undefined)
    }
  })

  t.test('variants: one URL keeps a response per Vary value, in its own hash slot, each read in one or two gets', async (t) => {
    const { store, operations } = await make(t)
    const { ns } = namespace()
    const variants = new VariantStore(store, { maxVariants: 16 })
    const keys = urlKeys(ns, '/x')
    const en = { 'accept-language': 'en' }
    const de = { 'accept-language': 'de' }
    const englishEntry = entryFor('/x', en, 'Accept-Language', 'english')
    const deutschEntry = entryFor('/x', de, 'Accept-Language', 'deutsch')
    await variants.set(keys, en, englishEntry, 60_000)
    await variants.set(keys, de, deutschEntry, 60_000)
    const english = await variants.get(keys, en)
    const deutsch = await variants.get(keys, de)
    t.ok(english.value?.equals(encodeEntry(englishEntry)), 'en reads the English variant, byte for byte')
    t.ok(deutsch.value?.equals(encodeEntry(deutschEntry)), 'de reads the German variant')
    t.not(english.keys.entry, deutsch.keys.entry)
    for (const found of [english, deutsch]) {
      t.equal(found.keys.primary, keys.primary)
      t.ok(found.keys.entry.startsWith(`${keys.primary}:v:`), 'under the URL\'s key, so in its hash slot')
      t.equal(found.keys.lock, `${found.keys.entry}:lock`, 'a lock of its own')
      t.equal(found.keys.invalidation, keys.invalidation, 'and the path\'s marker')
    }
    t.same(await variants.get(keys, { 'accept-language': ' EN ' }), english, 'a value normalised as RFC 9111 section 4.1 allows')
    const none = await variants.get(keys, {})
    t.equal(none.value, null, 'no Accept-Language: a variant not stored')
    t.same(decodeVariantIndex((await store.get([keys.primary]))[0] as Buffer)?.names, ['accept-language'], 'the URL\'s key holds the index')
    const peeked = variants.peek(keys, de)
    if (store.peek === undefined) t.equal(peeked, undefined, 'a store across the network cannot peek')
    else t.same(peeked, deutsch, 'peek finds what get finds')
    const plain = urlKeys(ns, '/plain')
    await variants.set(plain, en, entryFor('/plain', en, '', 'plain'), 60_000)
    operations.length = 0
    const found = await variants.get(plain, de)
    t.same([found.keys, found.value?.subarray(-5).toString()], [plain, 'plain'], 'without Vary, one entry under the URL\'s key answers all')
    t.equal(operations.filter(({ operation }) => operation === 'get').length, 1, 'in one get, the marker with it')
    operations.length = 0
    await variants.get(keys, de)
    t.equal(operations.filter(({ operation }) => operation === 'get').length, 2, 'a variant: the index, then the variant')
  })

  t.test('variants: past maxVariants the oldest goes; storing one again makes it the newest', async (t) => {
    const { store } = await make(t)
    const { ns } = namespace()
    const variants = new VariantStore(store, { maxVariants: 2 })
    const keys = urlKeys(ns, '/x')
    const lang = (language: string): HeaderFields => ({ 'accept-language': language })
    const put = async (language: string): Promise<void> => {
      await variants.set(keys, lang(language), entryFor('/x', lang(language), 'accept-language', language), 60_000)
    }
    const held = async (): Promise<string[]> => {
      const held: string[] = []
      for (const language of ['en', 'de', 'fr']) if ((await variants.get(keys, lang(language))).value !== null) held.push(language)
      return held
    }
    await put('en')
    await put('de')
    await put('en')
    await put('fr')
    t.same(await held(), ['en', 'fr'], 'de was the oldest once en was stored again')
    t.same(decodeVariantIndex((await store.get([keys.primary]))[0] as Buffer)?.variants.length, 2)
  })

  t.test('variants: a Vary on other fields, or none, replaces the index and deletes its variants', async (t) => {
    const { store } = await make(t)
    const { ns } = namespace()
    const variants = new VariantStore(store, { maxVariants: 16 })
    const keys = urlKeys(ns, '/x')
    const en = { 'accept-language': 'en', 'accept-encoding': 'gzip' }
    await variants.set(keys, en, entryFor('/x', en, 'accept-language', 'by language'), 60_000)
    const byLanguage = await variants.get(keys, en)
    await variants.set(keys, en, entryFor('/x', en, 'Accept-Encoding, accept-language', 'by both'), 60_000)
    const byBoth = await variants.get(keys, en)
    t.not(byBoth.keys.entry, byLanguage.keys.entry)
    t.ok(byBoth.value?.subarray(-7).equals(buf('by both')))
    t.same(await store.get([byLanguage.keys.entry]), [null], 'the variant keyed on the old names went')
    await variants.set(byBoth.keys, en, entryFor('/x', en, '', 'one for all'), 60_000)
    t.same(await store.get([byBoth.keys.entry]), [null], 'a response without Vary, to a request that found an index, deletes the variants')
    t.ok((await variants.get(keys, {})).value?.subarray(-11).equals(buf('one for all')))
  })

  t.test('variants: a purge of the route prefix deletes the index and every variant', async (t) => {
    const { store } = await make(t)
    const { ns } = namespace()
    const variants = new VariantStore(store, { maxVariants: 16 })
    const keys = urlKeys(ns, '/x')
    for (const language of ['en', 'de', 'fr']) {
      const headers = { 'accept-language': language }
      await variants.set(keys, headers, entryFor('/x', headers, 'accept-language', language), 60_000)
    }
    t.equal(await store.purge(routePrefix(`${ns}:`, 'r')), 4, 'the index and three variants')
    for (const language of ['en', 'de', 'fr']) t.equal((await variants.get(keys, { 'accept-language': language })).value, null, language)
  })
}
