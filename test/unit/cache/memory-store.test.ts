// The memory store with a fake clock: the CacheStore contract, then LRU eviction, the expiry boundary and option checks.
import t from 'tap'
import { DEFAULT_MEMORY_MAX_ENTRIES, MemoryStore, type MemoryStoreOptions } from '../../../src/cache/memory-store.js'
import { storeContract, type ReportedOperation } from '../../helpers/store-contract.js'

interface Rig {
  store: MemoryStore
  clock: { now: number }
  operations: ReportedOperation[]
}

const rig = (options: MemoryStoreOptions = {}): Rig => {
  const clock = { now: 1_000_000 }
  const operations: ReportedOperation[] = []
  const store = new MemoryStore({
    now: () => clock.now,
    onOperation: (operation, seconds, error) => operations.push(error === undefined ? { operation, seconds } : { operation, seconds, error }),
    ...options
  })
  return { store, clock, operations }
}

const buf = (text: string): Buffer => Buffer.from(text, 'utf8')

t.test('the CacheStore contract', async (t) => {
  storeContract(t, {
    kind: 'memory',
    make: async () => {
      const { store, clock, operations } = rig()
      return {
        store,
        operations,
        elapse: async (ms, gone) => {
          clock.now += ms
          if (!(await gone())) throw new Error(`still there ${ms} ms later on the fake clock`)
        }
      }
    }
  })
})

t.test('at maxEntries, storing one more evicts the least recently used', async (t) => {
  const { store } = rig({ maxEntries: 3 })
  for (const key of ['a', 'b', 'c']) await store.set(key, buf(key), 60_000)
  await store.get(['a'])
  await store.set('d', buf('d'), 60_000)
  t.same(await store.get(['a', 'b', 'c', 'd']), [buf('a'), null, buf('c'), buf('d')], 'b was the least recently used: a was read')
  t.equal(store.size, 3)
  await store.set('c', buf('c2'), 60_000)
  await store.set('e', buf('e'), 60_000)
  t.same(await store.get(['a', 'c', 'd', 'e']), [null, buf('c2'), buf('d'), buf('e')], 'rewriting c made it recent; a went next')
  t.same(store.health(), { status: 'UP', details: { entries: 3, maxEntries: 3 } })
  t.equal(await store.lock('lock', 60_000), true)
  t.same(await store.get(['c']), [null], 'a lock takes an entry too')
})

t.test('an entry lives while now < set time + ttl, and reading it expired removes it', async (t) => {
  const { store, clock } = rig()
  await store.set('k', buf('v'), 1000)
  clock.now += 999
  t.same(await store.get(['k']), [buf('v')])
  t.equal(store.size, 1)
  clock.now += 1
  t.same(await store.get(['k']), [null])
  t.equal(store.size, 0, 'removed on read')
  await store.set('f', buf('v'), 0.5)
  t.same(await store.get(['f']), [buf('v')], 'a fractional TTL is rounded up to 1 ms')
  clock.now += 1
  t.same(await store.get(['f']), [null])
})

t.test('purge removes expired entries under the prefix without counting them', async (t) => {
  const { store, clock } = rig()
  await store.set('p:old', buf('old'), 100)
  await store.set('p:new', buf('new'), 10_000)
  await store.set('q:old', buf('old'), 100)
  clock.now += 100
  t.equal(await store.purge('p:'), 1)
  t.equal(store.size, 1, 'only q:old is left, expired but outside the prefix')
})

t.test('an expired lock is free, and a held one is not renewed by a failed attempt', async (t) => {
  const { store, clock } = rig()
  t.equal(await store.lock('l', 1000), true)
  clock.now += 500
  t.equal(await store.lock('l', 1000), false)
  clock.now += 500
  t.equal(await store.lock('l', 1000), true, 'free once its first TTL ran out')
})

t.test('values are handed back as stored, not copied', async (t) => {
  const { store } = rig()
  const value = buf('v')
  await store.set('k', value, 1000)
  const [back] = await store.get(['k'])
  t.equal(back, value)
})

t.test('defaults and option checks', async (t) => {
  const store = new MemoryStore()
  t.equal(store.maxEntries, DEFAULT_MEMORY_MAX_ENTRIES)
  await store.set('k', buf('v'), 60_000)
  t.same(await store.get(['k']), [buf('v')], 'the real clock by default')
  await store.close()
  t.same(await store.get(['k']), [null], 'close empties it')
  for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => new MemoryStore({ maxEntries }), { name: 'RangeError', message: `expected options.maxEntries to be a positive integer, got ${maxEntries}` })
  }
})
