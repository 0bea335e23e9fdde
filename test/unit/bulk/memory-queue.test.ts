// The in-memory bulk queue with a fake wall clock: the BulkQueue contract, then its ids, its bound and its option checks.
import t from 'tap'
import { DEFAULT_MEMORY_QUEUE_MAX_ITEMS, MemoryQueue, type QueuedItem } from '../../../src/bulk/index.js'
import { queueContract } from '../../helpers/queue-contract.js'

const buf = (text: string): Buffer => Buffer.from(text, 'utf8')

t.test('the BulkQueue contract', async (t) => {
  const clock = { now: 1_700_000_000_000 }
  queueContract(t, {
    durable: false,
    make: async () => new MemoryQueue({ now: () => clock.now }),
    elapse: (ms) => { clock.now += ms },
    now: () => clock.now
  })
})

t.test('ids are <ms>-<seq> like Redis Stream ids, increasing even when the clock stands still or steps back', async (t) => {
  let now = 5000
  const queue = new MemoryQueue({ now: () => now })
  const ids = [await queue.append(buf('a')), await queue.append(buf('b'))]
  now = 4000
  ids.push(await queue.append(buf('c')))
  now = 6000
  ids.push(await queue.append(buf('d')))
  t.same(ids, ['5000-0', '5000-1', '5000-2', '6000-0'])
  const taken = await queue.take(4)
  t.same(taken.map((item) => item.enqueuedAtMs), [5000, 5000, 5000, 6000], 'an item stepped back is stamped with the ms of its id')
  now = 7000
  t.same(await queue.stats(), { pending: 4, deadLetters: 0, oldestAgeMs: 2000 })
  now = 1000
  t.equal((await queue.stats()).oldestAgeMs, 0, 'a clock stepped back shows no negative age')
})

t.test('the oldest pending item is the first taken or the first not taken, whichever entered first', async (t) => {
  let now = 1000
  const queue = new MemoryQueue({ now: () => now })
  await queue.append(buf('a'))
  const [a] = await queue.take(1) as [QueuedItem]
  await queue.deadLetter([{ item: a, error: 'x' }])
  now = 2000
  await queue.append(buf('b'))
  now = 3000
  await queue.redrive()
  now = 4000
  t.equal((await queue.stats()).oldestAgeMs, 2000, 'b, not a redriven at 3000')
  const [b] = await queue.take(1) as [QueuedItem]
  t.equal(b.body.toString(), 'b')
  t.equal((await queue.stats()).oldestAgeMs, 2000, 'b, taken, is still the oldest')
})

t.test('at maxItems, pending and dead letters together, append refuses with 503 queue full', async (t) => {
  t.equal(DEFAULT_MEMORY_QUEUE_MAX_ITEMS, 100_000)
  t.equal(new MemoryQueue().maxItems, DEFAULT_MEMORY_QUEUE_MAX_ITEMS)
  const queue = new MemoryQueue({ maxItems: 3 })
  await queue.append(buf('a'))
  await queue.append(buf('b'))
  const [a] = await queue.take(1) as [QueuedItem]
  await queue.deadLetter([{ item: a, error: 'x' }])
  await queue.append(buf('c'))
  await t.rejects(queue.append(buf('d')), {
    code: 'BW_ERR_BULK_QUEUE_FULL',
    statusCode: 503,
    message: 'the in-memory bulk queue holds 3 items (maxItems), dead letters included'
  })
  const [b] = await queue.take(1) as [QueuedItem]
  await queue.ack([b])
  t.match(await queue.append(buf('d')), /^\d+-\d+$/, 'room again once one is acknowledged')
})

t.test('never durable, never claimed: claimAfterMs is Infinity and touch changes nothing', async (t) => {
  const queue = new MemoryQueue()
  t.equal(queue.durable, false)
  t.equal(queue.claimAfterMs, Number.POSITIVE_INFINITY)
  await queue.append(buf('a'))
  const taken = await queue.take(1)
  await queue.touch(taken)
  t.same(await queue.take(1), [])
  t.match(await queue.stats(), { pending: 1 })
})

t.test('checks maxItems', async (t) => {
  for (const maxItems of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => new MemoryQueue({ maxItems }), { name: 'RangeError', message: `expected options.maxItems to be a positive integer, got ${maxItems}` })
  }
})
