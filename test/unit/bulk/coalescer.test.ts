// The write coalescer with a fake clock and dispatches settled by hand: cuts, per-item results, concurrency, backpressure, flush.
import t from 'tap'
import {
  Coalescer, CoalescerClosedError, CoalescerFullError, DEFAULT_BULK_BATCH_SIZE, DEFAULT_BULK_CONCURRENCY,
  DEFAULT_BULK_MAX_BATCH_BYTES, DEFAULT_BULK_MAX_PENDING, DEFAULT_BULK_MAX_WAIT_MS,
  type CoalescerOptions
} from '../../../src/bulk/index.js'
import { FakeClock } from '../../helpers/clock.js'

/** One dispatch call, settled by the test. */
interface Call {
  readonly batch: readonly number[]
  readonly resolve: (results: ReadonlyArray<string | Error>) => void
  readonly reject: (reason: Error) => void
}

interface Rig {
  coalescer: Coalescer<number, string>
  clock: FakeClock
  calls: Call[]
  /** onBatch's [size, bytes], per batch sent. */
  sent: Array<[number, number]>
  /** onBatchSettled's [size, durationMs, failed], per batch settled. */
  settled: Array<[number, number, boolean]>
}

const rig = (options: Partial<CoalescerOptions<number, string>> = {}): Rig => {
  const clock = new FakeClock()
  const calls: Call[] = []
  const sent: Rig['sent'] = []
  const settled: Rig['settled'] = []
  const coalescer = new Coalescer<number, string>({
    dispatch: async (batch) => await new Promise<ReadonlyArray<string | Error>>((resolve, reject) => { calls.push({ batch, resolve, reject }) }),
    clock,
    onBatch: (size, bytes) => sent.push([size, bytes]),
    onBatchSettled: (size, durationMs, failed) => settled.push([size, durationMs, failed]),
    ...options
  })
  return { coalescer, clock, calls, sent, settled }
}

const nth = (calls: Call[], i: number): Call => {
  const call = calls[i]
  if (call === undefined) throw new Error(`no dispatch call #${i}`)
  return call
}

const batches = (r: Rig): number[][] => r.calls.map((call) => [...call.batch])

/** What an upstream answers for a batch: `r<item>` per item, in order. */
const answer = (batch: readonly number[]): string[] => batch.map((n) => `r${n}`)

/** Runs every queued promise callback: one event-loop turn, no time on any clock. */
const turn = async (): Promise<void> => {
  await new Promise<void>((resolve) => { setImmediate(resolve) })
}

/** Answers every call from `from` on, including the ones each answer lets out. */
const answerFrom = async (r: Rig, from: number): Promise<void> => {
  for (let i = from; i < r.calls.length; i++) {
    const call = nth(r.calls, i)
    call.resolve(answer(call.batch))
    await turn()
  }
}

/** Each promise's value, or what it rejected with as `Name: message`. */
const outcomes = async (promises: Array<Promise<string>>): Promise<string[]> => {
  return (await Promise.allSettled(promises)).map((outcome) => {
    if (outcome.status === 'fulfilled') return outcome.value
    const reason: unknown = outcome.reason
    return reason instanceof Error ? `${reason.name}: ${reason.message}` : `not an Error: ${String(reason)}`
  })
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i)

t.test('defaults and option checks', async (t) => {
  t.same(
    [DEFAULT_BULK_BATCH_SIZE, DEFAULT_BULK_MAX_BATCH_BYTES, DEFAULT_BULK_MAX_WAIT_MS, DEFAULT_BULK_CONCURRENCY, DEFAULT_BULK_MAX_PENDING],
    [1000, 5 * 1024 * 1024, 50, 2, 100_000],
    "the issue's numbers"
  )
  const dispatch = async (batch: readonly number[]): Promise<number[]> => [...batch]
  const coalescer = new Coalescer({ dispatch })
  t.same(
    [coalescer.batchSize, coalescer.maxBatchBytes, coalescer.maxWaitMs, coalescer.concurrency, coalescer.maxPending],
    [DEFAULT_BULK_BATCH_SIZE, DEFAULT_BULK_MAX_BATCH_BYTES, DEFAULT_BULK_MAX_WAIT_MS, DEFAULT_BULK_CONCURRENCY, DEFAULT_BULK_MAX_PENDING]
  )
  t.equal(new Coalescer({ dispatch, maxWaitMs: 0 }).maxWaitMs, 0, 'maxWaitMs 0 is allowed')

  const cases: Array<[string, number]> = [
    ['batchSize', 0], ['batchSize', 1.5], ['maxBatchBytes', -1], ['maxBatchBytes', Number.NaN], ['concurrency', 0],
    ['concurrency', Number.POSITIVE_INFINITY], ['maxPending', 0]
  ]
  for (const [name, value] of cases) {
    const options = { dispatch, [name]: value } as CoalescerOptions<number, number>
    t.throws(() => new Coalescer(options), { name: 'RangeError', message: `expected options.${name} to be a positive integer, got ${value}` })
  }
  for (const maxWaitMs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => new Coalescer({ dispatch, maxWaitMs }), {
      name: 'RangeError', message: `expected options.maxWaitMs to be a non-negative number of milliseconds, got ${maxWaitMs}`
    })
  }
  t.throws(() => new Coalescer({} as CoalescerOptions<number, number>), {
    name: 'TypeError', message: 'expected options.dispatch to be a function, got undefined'
  })
})

t.test('add refuses a bytes that is not a non-negative number, and queues nothing', async (t) => {
  const r = rig()
  const refused = [-1, Number.NaN, Number.POSITIVE_INFINITY].map((bytes) => r.coalescer.add(0, bytes))
  t.same(await outcomes(refused), [
    'RangeError: expected bytes to be a non-negative number, got -1',
    'RangeError: expected bytes to be a non-negative number, got NaN',
    'RangeError: expected bytes to be a non-negative number, got Infinity'
  ])
  t.equal(r.coalescer.pending, 0)
  t.equal(r.clock.timers.size, 0)
})

t.test('the real clock by default: flush() sends at once, without waiting for maxWait', async (t) => {
  const sent: number[][] = []
  const coalescer = new Coalescer<number, number>({ dispatch: async (batch) => { sent.push([...batch]); return batch.map((n) => n + 1) } })
  const result = coalescer.add(1, 1)
  t.equal(coalescer.pending, 1, 'it waits for company')
  t.ok(coalescer.oldestPendingAgeMs >= 0 && coalescer.oldestPendingAgeMs < DEFAULT_BULK_MAX_WAIT_MS)
  await coalescer.flush()
  t.same(sent, [[1]])
  t.equal(await result, 2)
})

t.test('a batch is cut at batchSize items, in arrival order, as soon as it is full', async (t) => {
  const r = rig({ batchSize: 3, concurrency: 3 })
  const results = [r.coalescer.add(0, 1), r.coalescer.add(1, 1)]
  t.equal(r.calls.length, 0, 'two items wait')
  t.equal(r.clock.timers.size, 1, 'for maxWait')
  results.push(r.coalescer.add(2, 1))
  t.same(batches(r), [[0, 1, 2]], 'the third fills the batch: it goes at once')
  t.equal(r.clock.timers.size, 0, 'taking its timer with it')
  for (const n of range(3, 7)) results.push(r.coalescer.add(n, 1))
  t.same(batches(r), [[0, 1, 2], [3, 4, 5]])
  t.equal(r.coalescer.pending, 1)
  t.equal(r.coalescer.inFlight, 6)
  r.clock.advance(DEFAULT_BULK_MAX_WAIT_MS)
  t.same(batches(r), [[0, 1, 2], [3, 4, 5], [6]], 'the rest goes after maxWait')
  t.same(r.sent, [[3, 3], [3, 3], [1, 1]])
  await answerFrom(r, 0)
  t.same(await Promise.all(results), answer(range(0, 7)))
  t.equal(r.coalescer.inFlight, 0)
})

t.test('a batch is cut before the item that would pass maxBatchBytes; a larger item goes alone', async (t) => {
  const r = rig({ maxBatchBytes: 100, concurrency: 10 })
  const results = [r.coalescer.add(0, 40), r.coalescer.add(1, 40)]
  t.equal(r.calls.length, 0, '80 bytes wait')
  results.push(r.coalescer.add(2, 30))
  t.same(batches(r), [[0, 1]], '110 bytes pending: cut before the item that would make it 110')
  t.equal(r.coalescer.pending, 1)
  results.push(r.coalescer.add(3, 70))
  t.same(batches(r)[1], [2, 3], 'exactly 100 bytes is full')
  results.push(r.coalescer.add(4, 250))
  t.same(batches(r)[2], [4], 'larger than maxBatchBytes: alone, not refused')
  results.push(r.coalescer.add(5, 10), r.coalescer.add(6, 500))
  t.same(batches(r).slice(3), [[5], [6]], 'the small one before it goes without it')
  t.same(r.sent, [[2, 80], [2, 100], [1, 250], [1, 10], [1, 500]])
  t.equal(r.coalescer.pending, 0)
  await answerFrom(r, 0)
  t.same(await Promise.all(results), answer(range(0, 7)))
})

t.test('a lone item goes after maxWait, counted from the oldest pending item', async (t) => {
  const r = rig({ maxWaitMs: 50 })
  const results = [r.coalescer.add(0, 1)]
  r.clock.advance(30)
  results.push(r.coalescer.add(1, 1))
  t.equal(r.coalescer.oldestPendingAgeMs, 30)
  t.equal(r.clock.armed, 1, 'one timer for the oldest item: the second add does not set another')
  r.clock.advance(19)
  t.equal(r.calls.length, 0, 'at 49 ms, not yet')
  r.clock.advance(1)
  t.same(batches(r), [[0, 1]], 'at 50 ms from the oldest; the newer one rides along')
  t.equal(r.coalescer.oldestPendingAgeMs, 0)
  t.equal(r.clock.timers.size, 0, 'no timer while nothing is pending')

  r.clock.advance(10)
  results.push(r.coalescer.add(2, 1))
  r.clock.advance(49)
  t.equal(r.calls.length, 1, 'the next item counts from its own arrival')
  r.clock.advance(1)
  t.same(batches(r), [[0, 1], [2]])
  await answerFrom(r, 0)
  t.same(await Promise.all(results), ['r0', 'r1', 'r2'])
})

t.test('each caller gets the result in its own position of the batch', async (t) => {
  const r = rig({ batchSize: 3 })
  const results = [7, 7, 9].map((n) => r.coalescer.add(n, 1))
  const call = nth(r.calls, 0)
  t.same(call.batch, [7, 7, 9])
  call.resolve(call.batch.map((n, i) => `${n}@${i}`))
  t.same(await Promise.all(results), ['7@0', '7@1', '9@2'], 'by position, not by value')
})

t.test('an Error in a result slot fails only that item', async (t) => {
  const r = rig({ batchSize: 3 })
  const results = [0, 1, 2].map((n) => r.coalescer.add(n, 1))
  const invalid = new Error('item 1 is invalid')
  nth(r.calls, 0).resolve(['r0', invalid, 'r2'])
  t.same(await outcomes(results), ['r0', 'Error: item 1 is invalid', 'r2'])
  t.equal(await results[1]?.catch((err: unknown) => err), invalid, 'rejected with that very Error')
  t.same(r.settled, [[3, 0, false]], 'not a batch failure')
})

t.test('a rejected dispatch fails every item of its batch, and no other', async (t) => {
  const r = rig({ batchSize: 2 })
  const results = range(0, 4).map((n) => r.coalescer.add(n, 1))
  t.same(batches(r), [[0, 1], [2, 3]])
  r.clock.advance(20)
  const down = new Error('upstream down')
  nth(r.calls, 0).reject(down)
  nth(r.calls, 1).resolve(['r2', 'r3'])
  t.same(await outcomes(results), ['Error: upstream down', 'Error: upstream down', 'r2', 'r3'])
  t.equal(await results[0]?.catch((err: unknown) => err), down)
  t.same(r.settled, [[2, 20, true], [2, 20, false]])
})

t.test('a dispatch that throws synchronously counts as a rejection and frees its slot', async (t) => {
  const boom = new Error('boom')
  let calls = 0
  const coalescer = new Coalescer<number, string>({
    batchSize: 1, concurrency: 1, clock: new FakeClock(), dispatch: () => { calls++; throw boom }
  })
  const first = coalescer.add(0, 1)
  const second = coalescer.add(1, 1)
  t.equal(await first.catch((err: unknown) => err), boom)
  t.equal(await second.catch((err: unknown) => err), boom, 'the next batch got the slot')
  t.equal(calls, 2)
  t.equal(coalescer.inFlight, 0)
})

t.test('a result array of the wrong length fails its whole batch with a TypeError that says so', async (t) => {
  const r = rig({ batchSize: 2, concurrency: 4 })
  const results = range(0, 8).map((n) => r.coalescer.add(n, 1))
  nth(r.calls, 0).resolve(['r0'])
  nth(r.calls, 1).resolve(['r2', 'r3', 'extra'])
  nth(r.calls, 2).resolve(undefined as unknown as string[])
  nth(r.calls, 3).resolve(null as unknown as string[])
  const expected = (got: string): string => `TypeError: expected dispatch to resolve with 2 results (one per item, in order), got ${got}`
  t.same(await outcomes(results), ['1', '3', 'undefined', 'null'].flatMap((got) => [expected(got), expected(got)]))
  t.same(r.settled.map(([, , failed]) => failed), [true, true, true, true])
})

t.test('at most concurrency batches in flight; full batches wait and take freed slots oldest first', async (t) => {
  let open = 0
  let most = 0
  const r = rig({
    batchSize: 2,
    concurrency: 2,
    onBatch: () => { most = Math.max(most, ++open) },
    onBatchSettled: () => { open-- }
  })
  const results = range(0, 10).map((n) => r.coalescer.add(n, 1))
  t.same(batches(r), [[0, 1], [2, 3]])
  t.equal(r.coalescer.pending, 6, 'three full batches wait, still counted')
  t.equal(r.coalescer.inFlight, 4)
  nth(r.calls, 1).resolve(['r2', 'r3'])
  await turn()
  t.same(batches(r)[2], [4, 5], 'the freed slot goes to the oldest waiting batch, though an older batch is still out')
  t.equal(r.calls.length, 3)
  nth(r.calls, 0).resolve(['r0', 'r1'])
  await turn()
  t.same(batches(r)[3], [6, 7])
  t.equal(r.calls.length, 4)
  await answerFrom(r, 2)
  t.same(batches(r), [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
  t.same(await Promise.all(results), answer(range(0, 10)))
  t.equal(most, 2, 'never more than two at once')
  t.equal(r.clock.time, 0, 'all of it without maxWait')
})

t.test('a partial batch whose maxWait passed while every slot was taken goes as soon as one frees', async (t) => {
  const r = rig({ concurrency: 1, maxWaitMs: 50 })
  const first = r.coalescer.add(0, 1)
  r.clock.advance(50)
  t.same(batches(r), [[0]])
  const second = r.coalescer.add(1, 1)
  r.clock.advance(80)
  t.equal(r.calls.length, 1, 'due, but the only slot is taken')
  t.equal(r.coalescer.oldestPendingAgeMs, 80)
  t.equal(r.clock.timers.size, 0, 'and no timer spins meanwhile')
  nth(r.calls, 0).resolve(['r0'])
  t.equal(await first, 'r0')
  t.same(batches(r), [[0], [1]], 'sent as the slot freed, no timer needed')
  nth(r.calls, 1).resolve(['r1'])
  t.equal(await second, 'r1')
})

t.test('past maxPending, add refuses at once with retryAfterMs; nothing accepted is dropped', async (t) => {
  const r = rig({ batchSize: 2, concurrency: 1, maxPending: 5, maxWaitMs: 50 })
  const accepted = range(0, 5).map((n) => r.coalescer.add(n, 1))
  t.same(batches(r), [[0, 1]])
  t.equal(r.coalescer.pending + r.coalescer.inFlight, 5)

  const refused: unknown = await r.coalescer.add(5, 1).catch((err: unknown) => err)
  t.type(refused, CoalescerFullError)
  t.match(refused, { name: 'CoalescerFullError', maxPending: 5, retryAfterMs: 50 }, 'maxWaitMs before any batch has settled')
  t.equal((refused as Error).message, '5 items are already pending or in flight (options.maxPending); retry in 50 ms')
  t.equal(r.coalescer.pending, 3, 'the refused item was not queued')

  r.clock.advance(300)
  nth(r.calls, 0).resolve(['r0', 'r1'])
  await turn()
  t.same(batches(r), [[0, 1], [2, 3]])
  t.equal(r.clock.timers.size, 0, 'item 4 is past maxWait and waits for the slot, with no timer')
  accepted.push(r.coalescer.add(5, 1), r.coalescer.add(6, 1))
  t.equal(r.coalescer.pending + r.coalescer.inFlight, 5, 'room for two again')
  const again: unknown = await r.coalescer.add(7, 1).catch((err: unknown) => err)
  t.match(again, { retryAfterMs: 300 }, 'the last batch took 300 ms: a slot frees about that often')

  const flushed = r.coalescer.flush()
  await answerFrom(r, 1)
  await flushed
  t.same(await Promise.all(accepted), answer(range(0, 7)), 'every accepted item got its result')
})

t.test('flush() sends everything pending at once and resolves only when every earlier item has its result', async (t) => {
  const r = rig({ batchSize: 2, concurrency: 1 })
  const results = range(0, 5).map((n) => r.coalescer.add(n, 1))
  let flushed = false
  const flushing = r.coalescer.flush().then(() => { flushed = true })
  await turn()
  t.same(batches(r), [[0, 1]], 'still one slot')
  t.notOk(flushed, 'the first batch is out')
  nth(r.calls, 0).resolve(['r0', 'r1'])
  await turn()
  t.same(batches(r)[1], [2, 3])
  t.notOk(flushed)
  nth(r.calls, 1).resolve(['r2', 'r3'])
  await turn()
  t.same(batches(r)[2], [4], 'the partial batch goes as soon as a slot frees, without waiting for maxWait')
  t.notOk(flushed, 'item 4 is not finished')
  nth(r.calls, 2).resolve(['r4'])
  await flushing
  t.ok(flushed)
  t.equal(r.clock.time, 0, 'no time passed')
  t.same(await Promise.all(results), answer(range(0, 5)))
})

t.test('flush() does not wait for items added after it, and resolves at once with nothing outstanding', async (t) => {
  const r = rig({ concurrency: 1 })
  await r.coalescer.flush()
  t.equal(r.calls.length, 0, 'nothing to send')
  const first = r.coalescer.add(0, 1)
  const flushed = r.coalescer.flush()
  const later = r.coalescer.add(1, 1)
  t.same(batches(r), [[0]])
  nth(r.calls, 0).resolve(['r0'])
  await flushed
  t.equal(await first, 'r0')
  t.equal(r.coalescer.pending, 1, 'the later item still waits for maxWait, and the flush did not wait for it')
  r.clock.advance(DEFAULT_BULK_MAX_WAIT_MS)
  t.same(batches(r), [[0], [1]])
  nth(r.calls, 1).resolve(['r1'])
  t.equal(await later, 'r1')
})

t.test('close() refuses later adds and resolves once everything accepted has its result', async (t) => {
  const r = rig()
  const accepted = r.coalescer.add(0, 1)
  t.notOk(r.coalescer.closed)
  let done = false
  const closing = r.coalescer.close().then(() => { done = true })
  t.ok(r.coalescer.closed)
  t.same(batches(r), [[0]], 'pending items go at once')
  const refused: unknown = await r.coalescer.add(1, 1).catch((err: unknown) => err)
  t.type(refused, CoalescerClosedError)
  t.equal((refused as Error).message, 'the coalescer is closed: it accepts no new items')
  t.equal(r.coalescer.pending, 0)
  await turn()
  t.notOk(done, 'waits for the batch in flight')
  nth(r.calls, 0).resolve(['r0'])
  await closing
  t.equal(await accepted, 'r0')
  await r.coalescer.close()
  t.equal(r.calls.length, 1, 'closing again sends nothing')
})

t.test('5000 concurrent adds with batchSize 1000: exactly 5 batches, each caller gets its own result', async (t) => {
  const clock = new FakeClock()
  const sent: number[][] = []
  let open = 0
  let most = 0
  const coalescer = new Coalescer<number, string>({
    batchSize: 1000,
    clock,
    dispatch: async (batch) => { sent.push([...batch]); return answer(batch) },
    onBatch: () => { most = Math.max(most, ++open) },
    onBatchSettled: () => { open-- }
  })
  const items = range(0, 5000)
  const results = await Promise.all(items.map((n) => coalescer.add(n, 100)))
  t.equal(sent.length, 5)
  t.same(sent.map((batch) => batch.length), [1000, 1000, 1000, 1000, 1000])
  t.same(sent.flat(), items, 'every item exactly once, in arrival order')
  t.same(results, answer(items))
  t.equal(most, DEFAULT_BULK_CONCURRENCY)
  t.equal(clock.time, 0, 'no maxWait involved')
  t.same([coalescer.pending, coalescer.inFlight, clock.timers.size], [0, 0, 0])
})
