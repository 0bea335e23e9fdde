// The in-process tier over a shared store, both on a fake clock: what it answers alone, and when it asks again.
import t from 'tap'
import { MemoryStore } from '../../../src/cache/memory-store.js'
import { TieredStore } from '../../../src/cache/tiered-store.js'

const buf = (text: string): Buffer => Buffer.from(text, 'utf8')
const text = (values: Array<Buffer | null>): Array<string | null> => values.map((value) => value?.toString('utf8') ?? null)

/** A tier over a shared store that counts the reads reaching it. */
function rig (ttlMs = 1_000): { tiered: TieredStore, far: MemoryStore, farGets: () => number, clock: { now: number } } {
  const clock = { now: 1_000_000 }
  let gets = 0
  const far = new MemoryStore({ now: () => clock.now, onOperation: (operation) => { if (operation === 'get') gets++ } })
  const tiered = new TieredStore(far, { maxEntries: 100, ttlMs, now: () => clock.now })
  return { tiered, far, farGets: () => gets, clock }
}

t.test('a read the tier answered once is answered again without the shared store, until its ttl', async (t) => {
  const { tiered, far, farGets, clock } = rig()
  await far.set('{a}:entry', buf('one'), 60_000)
  t.same(text(await tiered.get(['{a}:entry', '{a}:inv'])), ['one', null])
  t.equal(farGets(), 1)
  await far.set('{a}:entry', buf('two'), 60_000)
  t.same(text(await tiered.get(['{a}:entry', '{a}:inv'])), ['one', null], 'the entry and the absent marker both from the tier')
  t.equal(farGets(), 1)
  clock.now += 1_001
  t.same(text(await tiered.get(['{a}:entry', '{a}:inv'])), ['two', null], 'past the ttl, the shared store again')
  t.equal(farGets(), 2)
})

t.test('writes and deletes reach both; a write ends a remembered absence', async (t) => {
  const { tiered, far, farGets } = rig()
  t.same(text(await tiered.get(['{b}:entry'])), [null])
  await tiered.set('{b}:entry', buf('stored'), 60_000)
  t.same(text(await far.get(['{b}:entry'])), ['stored'])
  t.same(text(await tiered.get(['{b}:entry'])), ['stored'])
  t.equal(farGets(), 2, 'one read of the tier\'s own, one to check the write')
  await tiered.delete(['{b}:entry'])
  t.same(text(await far.get(['{b}:entry'])), [null])
  t.same(text(await tiered.get(['{b}:entry'])), [null])
})

t.test('a value is kept in the tier no longer than its own ttl', async (t) => {
  const { tiered, far, clock } = rig(10_000)
  await tiered.set('{c}:entry', buf('short'), 500)
  clock.now += 501
  t.same(text(await tiered.get(['{c}:entry'])), [null])
  t.same(text(await far.get(['{c}:entry'])), [null])
})

t.test('locks, purges and health are the shared store\'s', async (t) => {
  const { tiered, far } = rig()
  t.equal(tiered.kind, 'memory')
  t.equal(await tiered.lock('{d}:lock', 1_000), true)
  t.equal(await far.lock('{d}:lock', 1_000), false, 'the lock is held in the shared store')
  await tiered.unlock('{d}:lock')
  t.equal(await far.lock('{d}:lock', 1_000), true)
  await tiered.set('{d}:a', buf('keep'), 60_000)
  await tiered.set('{d}:b', buf('drop'), 60_000)
  t.equal(await tiered.purge('{d}:', (value) => value.toString() === 'drop'), 1)
  t.same(text(await tiered.get(['{d}:a', '{d}:b'])), ['keep', null], 'the tier forgot the purged value too')
  t.same(tiered.health(), far.health())
  await tiered.close()
  t.same(text(await far.get(['{d}:a'])), ['keep'], 'closing the tier leaves the shared store')
})

t.test('peek answers at once what the tier knows, and nothing it would have to ask the shared store', async (t) => {
  const { tiered, far, farGets } = rig()
  await far.set('{e}:entry', buf('shared'), 60_000)
  t.equal(tiered.peek(['{e}:entry', '{e}:inv']), undefined, 'nothing known yet')
  await tiered.get(['{e}:entry', '{e}:inv'])
  t.same(text(tiered.peek(['{e}:entry', '{e}:inv']) ?? []), ['shared', null], 'the value and the absence, from the tier')
  t.equal(farGets(), 1)
  t.same(text(far.peek(['{e}:entry', '{e}:other'])), ['shared', null], 'the memory store peeks what it gets')
})
