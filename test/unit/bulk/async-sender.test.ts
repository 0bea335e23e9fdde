// The async sender over the memory queue, with a fake clock and dispatches answered by hand: batching, results, queue faults, keep-alive, stop.
import t from 'tap'
import {
  ASYNC_QUEUE_RETRY_MAX_MS, AsyncSender, BULK_ITEM_IDS_HEADER, DEAD_LETTER_BODY_CHARS, DEFAULT_ASYNC_IDLE_POLL_MS,
  DEFAULT_BULK_BATCH_SIZE, DEFAULT_BULK_CONCURRENCY, DEFAULT_BULK_MAX_BATCH_BYTES, DEFAULT_BULK_MAX_WAIT_MS, MemoryQueue,
  bulkItemIds, type AsyncSenderOptions, type BulkItemResult, type BulkQueue, type BulkQueueStats,
  type DeadLetter, type FailedItem, type QueuedItem
} from '../../../src/bulk/index.js'
import { gatewayError } from '../../../src/core/index.js'
import { FakeClock, turn } from '../../helpers/clock.js'

type QueueOperation = 'take' | 'touch' | 'ack' | 'deadLetter'

/**
 * A real MemoryQueue that can be told to fail its next calls, and to play a durable queue whose items another consumer
 * could claim: the Redis failure modes, on the memory queue's behaviour.
 */
class FaultyQueue implements BulkQueue {
  readonly inner: MemoryQueue
  readonly durable: boolean
  readonly claimAfterMs: number
  /** Calls of each operation that fail from now on, one each. */
  readonly failing: Record<QueueOperation, number> = { take: 0, touch: 0, ack: 0, deadLetter: 0 }
  readonly calls: Array<{ operation: QueueOperation, at: number, ids: string[] }> = []
  /** While set, each take waits for it: a take out on the network. */
  gate: Promise<void> | null = null
  readonly #clock: FakeClock

  constructor (clock: FakeClock, options: { durable?: boolean, claimAfterMs?: number } = {}) {
    this.inner = new MemoryQueue({ now: () => 1_700_000_000_000 + clock.time })
    this.durable = options.durable ?? false
    this.claimAfterMs = options.claimAfterMs ?? Number.POSITIVE_INFINITY
    this.#clock = clock
  }

  append = async (body: Buffer): Promise<string> => await this.inner.append(body)
  take = async (count: number): Promise<QueuedItem[]> => {
    this.#check('take', [String(count)])
    const items = await this.inner.take(count)
    // Redis answered before the gate: the answer is on its way back.
    await this.gate
    return items
  }

  touch = async (items: readonly QueuedItem[]): Promise<void> => { this.#check('touch', items.map((item) => item.id)) }
  ack = async (items: readonly QueuedItem[]): Promise<void> => {
    this.#check('ack', items.map((item) => item.id))
    await this.inner.ack(items)
  }

  deadLetter = async (failures: readonly FailedItem[]): Promise<void> => {
    this.#check('deadLetter', failures.map(({ item }) => item.id))
    await this.inner.deadLetter(failures)
  }

  deadLetters = async (limit: number): Promise<DeadLetter[]> => await this.inner.deadLetters(limit)
  redrive = async (): Promise<number> => await this.inner.redrive()
  stats = async (): Promise<BulkQueueStats> => await this.inner.stats()
  close = async (): Promise<void> => { await this.inner.close() }

  #check (operation: QueueOperation, ids: string[]): void {
    this.calls.push({ operation, at: this.#clock.time, ids })
    if (this.failing[operation] > 0) {
      this.failing[operation]--
      throw new Error(`${operation} failed: Connection is closed.`)
    }
  }
}

/** One dispatch call, answered by the test. */
interface Call {
  readonly items: readonly QueuedItem[]
  readonly at: number
  readonly resolve: (results: ReadonlyArray<BulkItemResult | Error>) => void
  readonly reject: (reason: unknown) => void
}

interface Rig {
  sender: AsyncSender
  queue: FaultyQueue
  clock: FakeClock
  calls: Call[]
  delivered: number[]
  failed: Array<[number, string]>
  errors: string[]
}

const rig = (options: Partial<AsyncSenderOptions> = {}, queueOptions: { durable?: boolean, claimAfterMs?: number } = {}): Rig => {
  const clock = new FakeClock()
  const queue = new FaultyQueue(clock, queueOptions)
  const calls: Call[] = []
  const delivered: number[] = []
  const failed: Array<[number, string]> = []
  const errors: string[] = []
  const sender = new AsyncSender({
    queue,
    clock,
    dispatch: async (items) => await new Promise((resolve, reject) => { calls.push({ items, at: clock.time, resolve, reject }) }),
    onDelivered: (count) => delivered.push(count),
    onFailed: (count, reason) => failed.push([count, reason]),
    onError: (error) => errors.push(error.message),
    ...options
  })
  return { sender, queue, clock, calls, delivered, failed, errors }
}

const buf = (text: string): Buffer => Buffer.from(text, 'utf8')
const ok = (status = 200): BulkItemResult => ({ status, body: buf('{"ok":true}'), contentType: 'application/json' })
const texts = (items: readonly QueuedItem[]): string[] => items.map((item) => item.body.toString('utf8'))
const batches = (r: Rig): string[][] => r.calls.map((call) => texts(call.items))

const nth = (r: Rig, i: number): Call => {
  const call = r.calls[i]
  if (call === undefined) throw new Error(`no dispatch call #${i}`)
  return call
}

/** Answers call `i` with a 2xx per item and lets the sender settle it. */
const accept = async (r: Rig, i: number): Promise<void> => {
  const call = nth(r, i)
  call.resolve(call.items.map(() => ok()))
  await turn()
}

const appendAll = async (r: Rig, bodies: readonly string[]): Promise<string[]> => {
  const ids: string[] = []
  for (const body of bodies) ids.push(await r.queue.append(buf(body)))
  return ids
}

t.test('defaults and option checks', async (t) => {
  t.equal(DEFAULT_ASYNC_IDLE_POLL_MS, 250)
  const queue = new MemoryQueue()
  const dispatch = async (): Promise<BulkItemResult[]> => []
  const sender = new AsyncSender({ queue, dispatch })
  t.same(
    [sender.batchSize, sender.maxBatchBytes, sender.maxWaitMs, sender.concurrency, sender.idlePollMs],
    [DEFAULT_BULK_BATCH_SIZE, DEFAULT_BULK_MAX_BATCH_BYTES, DEFAULT_BULK_MAX_WAIT_MS, DEFAULT_BULK_CONCURRENCY, DEFAULT_ASYNC_IDLE_POLL_MS],
    "the sync path's batch numbers"
  )
  t.equal(new AsyncSender({ queue, dispatch, maxWaitMs: 0 }).maxWaitMs, 0, 'maxWaitMs 0 is allowed')
  for (const [name, value] of [['batchSize', 0], ['maxBatchBytes', 1.5], ['concurrency', Number.NaN]] as const) {
    t.throws(() => new AsyncSender({ queue, dispatch, [name]: value }), { name: 'RangeError', message: `expected options.${name} to be a positive integer, got ${value}` })
  }
  t.throws(() => new AsyncSender({ queue, dispatch, maxWaitMs: -1 }), { name: 'RangeError', message: 'expected options.maxWaitMs to be a non-negative number of milliseconds, got -1' })
  t.throws(() => new AsyncSender({ queue, dispatch, idlePollMs: 0 }), { name: 'RangeError', message: 'expected options.idlePollMs to be a positive number of milliseconds, got 0' })
  t.throws(() => new AsyncSender({ queue, dispatch, idlePollMs: Number.POSITIVE_INFINITY }), { message: 'expected options.idlePollMs to be a positive number of milliseconds, got Infinity' })
  t.throws(() => new AsyncSender({ queue } as unknown as AsyncSenderOptions), { name: 'TypeError', message: 'expected options.dispatch to be a function, got undefined' })
  t.throws(() => new AsyncSender({ dispatch } as unknown as AsyncSenderOptions), { name: 'TypeError', message: 'expected options.queue to be a BulkQueue' })
  await t.rejects(sender.stop(-1), { name: 'RangeError', message: 'expected timeoutMs to be a non-negative number of milliseconds, got -1' })
})

t.test('item ids travel in one header, comma-separated, in batch order', async (t) => {
  t.equal(BULK_ITEM_IDS_HEADER, 'x-bulk-item-ids')
  const queue = new MemoryQueue({ now: () => 1000 })
  for (const body of ['a', 'b', 'c']) await queue.append(buf(body))
  t.equal(bulkItemIds(await queue.take(3)), '1000-0,1000-1,1000-2')
  t.equal(bulkItemIds([]), '')
})

t.test('the real clock by default: an item appended and notified is sent, delivered and acknowledged', async (t) => {
  const queue = new MemoryQueue()
  const sent: string[][] = []
  const sender = new AsyncSender({ queue, maxWaitMs: 0, dispatch: async (items) => { sent.push(texts(items)); return items.map(() => ok(202)) } })
  sender.start()
  sender.start()
  await queue.append(buf('a'))
  sender.notify()
  t.equal(await sender.stop(5000), true)
  t.same(sent, [['a']])
  t.same(await queue.stats(), { pending: 0, deadLetters: 0, oldestAgeMs: 0 })
})

t.test('a full batch goes at once; with every slot taken the sender takes nothing; the rest goes maxWaitMs after its take', async (t) => {
  const r = rig({ batchSize: 3, concurrency: 2 })
  await appendAll(r, ['a', 'b', 'c', 'd', 'e', 'f', 'g'])
  r.sender.start()
  await turn()
  t.same(batches(r), [['a', 'b', 'c'], ['d', 'e', 'f']], 'two full batches, in order, without waiting')
  t.equal(r.sender.inFlight, 6)
  t.match(await r.queue.stats(), { pending: 7 })
  await r.clock.elapse(10_000)
  t.equal(r.calls.length, 2, 'no slot, no take, however long')
  t.same(r.queue.calls.filter((call) => call.operation === 'take').length, 2)
  await accept(r, 0)
  t.same(r.delivered, [3])
  t.equal(r.calls.length, 2, 'g was taken when the slot freed, and waits for company')
  await r.clock.elapse(DEFAULT_BULK_MAX_WAIT_MS - 1)
  t.equal(r.calls.length, 2)
  await r.clock.elapse(1)
  t.same(batches(r), [['a', 'b', 'c'], ['d', 'e', 'f'], ['g']], 'g goes maxWaitMs after its take')
  await accept(r, 1)
  await accept(r, 2)
  t.same(r.delivered, [3, 3, 1])
  t.same(await r.queue.stats(), { pending: 0, deadLetters: 0, oldestAgeMs: 0 })
})

t.test('idle, it looks at the queue every idlePollMs; notify() makes it look at once', async (t) => {
  const r = rig({ idlePollMs: 100, maxWaitMs: 0 })
  r.sender.start()
  await turn()
  const takes = (): number => r.queue.calls.filter((call) => call.operation === 'take').length
  t.equal(takes(), 1, 'one look at the start')
  await appendAll(r, ['a'])
  await r.clock.elapse(99)
  t.equal(takes(), 1)
  t.equal(r.calls.length, 0, 'appended without a notify: found at the next poll')
  await r.clock.elapse(1)
  t.same(batches(r), [['a']])
  await accept(r, 0)
  const before = takes()
  await appendAll(r, ['b'])
  r.sender.notify()
  await turn()
  t.equal(takes(), before + 1, 'notify: a take at once')
  t.same(batches(r), [['a'], ['b']])
  t.equal(r.clock.time, 100, 'no time passed')
  r.sender.notify()
  r.sender.notify()
  await turn()
  t.equal(takes(), before + 2, 'notifications while a take is out make one more take, not one each')
})

t.test('a notify while a take is out is not lost: another take follows at once', async (t) => {
  const r = rig({ maxWaitMs: 0, idlePollMs: 10_000 })
  let release = (): void => {}
  r.queue.gate = new Promise((resolve) => { release = resolve })
  r.sender.start()
  await turn()
  await appendAll(r, ['a'])
  r.sender.notify()
  r.queue.gate = null
  release()
  await turn()
  t.same(batches(r), [['a']], 'the first take (out before the append) came back empty; the second found a')
  t.equal(r.clock.time, 0)
})

t.test('a batch is cut before the item that would pass maxBatchBytes, and goes at once; a larger item goes alone', async (t) => {
  const r = rig({ maxBatchBytes: 10, concurrency: 5 })
  await appendAll(r, ['1234', '5678', '9abc', 'this one is too big', 'x'])
  r.sender.start()
  await turn()
  t.same(batches(r), [['1234', '5678'], ['9abc'], ['this one is too big']], 'full by bytes: no wait')
  t.equal(r.sender.inFlight, 5, 'x waits for company')
  await r.clock.elapse(DEFAULT_BULK_MAX_WAIT_MS)
  t.same(batches(r).at(-1), ['x'])
})

t.test('per item: a 2xx is acknowledged; any other status, or an Error, is dead-lettered with why', async (t) => {
  const r = rig({ maxWaitMs: 0 })
  const long = 'y'.repeat(DEAD_LETTER_BODY_CHARS + 1)
  const ids = await appendAll(r, ['ok', 'created', 'refused', 'empty', 'long', 'timeout', 'plain', 'refused too'])
  r.sender.start()
  await turn()
  nth(r, 0).resolve([
    ok(200),
    ok(201),
    { status: 422, body: buf('{"error":"bad"}'), contentType: 'application/json' },
    { status: 503, body: Buffer.alloc(0), contentType: 'text/plain' },
    { status: 400, body: buf(long), contentType: 'text/plain' },
    gatewayError('BW_ERR_UPSTREAM_TIMEOUT', 'bulk batch b1 failed after 3 attempts'),
    new Error('socket hang up'),
    { status: 422, body: buf('{"error":"bad"}'), contentType: 'application/json' }
  ])
  await turn()
  t.same(r.delivered, [2])
  t.same(r.failed, [
    [2, 'upstream answered 422: {"error":"bad"}'],
    [1, 'upstream answered 503'],
    [1, `upstream answered 400: ${'y'.repeat(DEAD_LETTER_BODY_CHARS)}...`],
    [1, 'BW_ERR_UPSTREAM_TIMEOUT: bulk batch b1 failed after 3 attempts'],
    [1, 'socket hang up']
  ], 'one call per reason, counting its items')
  const letters = await r.queue.deadLetters(10)
  t.same(letters.map((letter) => [letter.id, letter.body.toString(), letter.error.slice(0, 40)]), [
    [ids[2], 'refused', 'upstream answered 422: {"error":"bad"}'],
    [ids[3], 'empty', 'upstream answered 503'],
    [ids[4], 'long', `upstream answered 400: ${'y'.repeat(17)}`],
    [ids[5], 'timeout', 'BW_ERR_UPSTREAM_TIMEOUT: bulk batch b1 f'],
    [ids[6], 'plain', 'socket hang up'],
    [ids[7], 'refused too', 'upstream answered 422: {"error":"bad"}']
  ], 'in batch order')
  t.same(await r.queue.stats(), { pending: 0, deadLetters: 6, oldestAgeMs: 0 })
  const order = r.queue.calls.filter((call) => call.operation !== 'take').map((call) => call.operation)
  t.same(order, ['deadLetter', 'ack'], 'dead letters first')
  t.equal(r.sender.inFlight, 0)
})

t.test('a rejected dispatch, a throwing one and an answer of the wrong length dead-letter the whole batch', async (t) => {
  // A dispatch outside TypeScript's reach may reject with anything.
  const notAnError: unknown = 'down'
  const cases: Array<[string, AsyncSenderOptions['dispatch'], string]> = [
    ['rejects', async () => { throw gatewayError('BW_ERR_UPSTREAM_UNREACHABLE', 'connect ECONNREFUSED') }, 'BW_ERR_UPSTREAM_UNREACHABLE: connect ECONNREFUSED'],
    ['rejects with a string', async () => { throw notAnError }, 'dispatch rejected with down'],
    ['throws at once', () => { throw new TypeError('not callable') }, 'not callable'],
    ['answers too few', async () => [ok()], 'expected dispatch to resolve with 2 results (one per item, in order), got 1'],
    ['answers null', async () => null as unknown as BulkItemResult[], 'expected dispatch to resolve with 2 results (one per item, in order), got null'],
    ['answers an object', async () => ({}) as unknown as BulkItemResult[], 'expected dispatch to resolve with 2 results (one per item, in order), got object']
  ]
  for (const [name, dispatch, reason] of cases) {
    const r = rig({ dispatch, maxWaitMs: 0 })
    await appendAll(r, ['a', 'b'])
    r.sender.start()
    await turn()
    t.same(r.failed, [[2, reason]], name)
    t.match(await r.queue.stats(), { pending: 0, deadLetters: 2 }, name)
  }
})

t.test('a failing take is reported and retried after 50, 100, 200... ms, capped; a notify does not cut the wait', async (t) => {
  const r = rig({ maxWaitMs: 0, idlePollMs: 10_000 })
  await appendAll(r, ['a'])
  r.queue.failing.take = 7
  r.sender.start()
  await turn()
  r.sender.notify()
  await r.clock.elapse(5000)
  const takes = r.queue.calls.filter((call) => call.operation === 'take').map((call) => call.at)
  t.same(takes, [0, 50, 150, 350, 750, 1550, 2550, 3550], 'waits double up to ASYNC_QUEUE_RETRY_MAX_MS')
  t.equal(ASYNC_QUEUE_RETRY_MAX_MS, 1000)
  t.equal(r.errors.length, 7)
  t.equal(r.errors[0], 'take failed: Connection is closed.')
  t.same(batches(r), [['a']], 'then it goes on')
  await accept(r, 0)
  const count = (): number => r.queue.calls.filter((call) => call.operation === 'take').length
  const before = count()
  r.queue.failing.take = 1
  r.sender.notify()
  await r.clock.elapse(49)
  t.equal(count(), before + 1, 'the notified take failed')
  await r.clock.elapse(1)
  t.equal(count(), before + 2, 'a success in between reset the wait to 50 ms')
})

t.test('a failing ack or dead-letter is retried until it goes through, its slot kept meanwhile', async (t) => {
  const r = rig({ maxWaitMs: 0, concurrency: 1 })
  await appendAll(r, ['a', 'b', 'c'])
  r.queue.failing.ack = 2
  r.queue.failing.deadLetter = 1
  r.sender.start()
  await turn()
  t.same(batches(r), [['a', 'b', 'c']])
  nth(r, 0).resolve([ok(), { status: 400, body: Buffer.alloc(0), contentType: 'text/plain' }, ok()])
  await turn()
  t.same(r.errors, ['deadLetter failed: Connection is closed.'])
  t.equal(r.sender.inFlight, 3, 'held until settled')
  await r.clock.elapse(50)
  t.same(r.errors, ['deadLetter failed: Connection is closed.', 'ack failed: Connection is closed.'])
  await r.clock.elapse(50)
  t.equal(r.errors.length, 3, 'the ack failed again: 100 ms to the next try')
  t.equal(r.sender.inFlight, 3)
  await r.clock.elapse(100)
  t.equal(r.sender.inFlight, 0)
  t.same(await r.queue.stats(), { pending: 0, deadLetters: 1, oldestAgeMs: 0 })
  t.same(r.delivered, [2])
})

t.test('held items are touched every third of claimAfterMs while a batch is out; a failed touch is reported', async (t) => {
  const r = rig({ maxWaitMs: 1000, batchSize: 2, concurrency: 1 }, { durable: true, claimAfterMs: 300 })
  const [a, b, c] = await appendAll(r, ['a', 'b', 'c'])
  r.sender.start()
  await turn()
  t.same(batches(r), [['a', 'b']])
  const touches = (): Array<[number, string[]]> => r.queue.calls.filter((call) => call.operation === 'touch').map((call) => [call.at, call.ids])
  await r.clock.elapse(99)
  t.same(touches(), [])
  await r.clock.elapse(1)
  t.same(touches(), [[100, [a, b]]])
  r.queue.failing.touch = 1
  await r.clock.elapse(100)
  t.same(r.errors, ['touch failed: Connection is closed.'])
  await accept(r, 0)
  t.same(batches(r), [['a', 'b']], 'c was taken and waits up to maxWait')
  await r.clock.elapse(100)
  t.same(touches().at(-1), [300, [c]], 'the buffered item is touched too')
  await r.clock.elapse(900)
  t.same(batches(r), [['a', 'b'], ['c']])
  await accept(r, 1)
  const count = touches().length
  await r.clock.elapse(1000)
  t.equal(touches().length, count, 'nothing held, nothing touched')
})

t.test('stop on a durable queue sends what it holds at once, takes nothing more, and resolves true once settled', async (t) => {
  const r = rig({ batchSize: 2, concurrency: 1, maxWaitMs: 1000 }, { durable: true })
  await appendAll(r, ['a', 'b', 'c', 'd', 'e'])
  r.sender.start()
  await turn()
  await accept(r, 0)
  t.same(batches(r), [['a', 'b'], ['c', 'd']])
  await accept(r, 1)
  t.equal(r.sender.inFlight, 1, 'e waits for company')
  const stopped = r.sender.stop(5000)
  await turn()
  t.same(batches(r), [['a', 'b'], ['c', 'd'], ['e']], 'sent without waiting for maxWait')
  await accept(r, 2)
  t.equal(await stopped, true)
  await r.queue.append(buf('f'))
  r.sender.notify()
  r.sender.start()
  await r.clock.elapse(10_000)
  t.equal(r.calls.length, 3, 'stopped for good')
  t.match(await r.queue.stats(), { pending: 1 }, 'f stays in the queue for another instance')
  t.equal(await r.sender.stop(0), true, 'stopping again')
})

t.test('stop leaves what is still out at its deadline in a durable queue, and resolves false', async (t) => {
  const r = rig({ batchSize: 2, concurrency: 1, maxWaitMs: 0 }, { durable: true })
  await appendAll(r, ['a', 'b', 'c'])
  r.sender.start()
  await turn()
  const stopped = r.sender.stop(1000)
  let result: boolean | undefined
  stopped.then((value) => { result = value }, () => {})
  await r.clock.elapse(999)
  t.equal(result, undefined)
  await r.clock.elapse(1)
  t.equal(result, false)
  t.equal(r.sender.inFlight, 2, 'a and b are still out')
  t.match(await r.queue.stats(), { pending: 3 }, 'nothing was lost: a and b unsettled, c never taken')
  r.queue.failing.ack = 1
  await accept(r, 0)
  t.same(r.errors, ['ack failed: Connection is closed.'], 'a late ack past the deadline is tried once')
  t.equal(r.sender.inFlight, 0)
  await r.clock.elapse(10_000)
  t.equal(r.queue.calls.filter((call) => call.operation === 'ack').length, 1, 'and not retried')
  t.equal(r.calls.length, 1)
})

t.test('stop drains a queue that is not durable, since what stays in it is lost', async (t) => {
  const r = rig({ batchSize: 2, concurrency: 1, maxWaitMs: 1000 })
  await appendAll(r, ['a', 'b', 'c', 'd', 'e'])
  r.sender.start()
  await turn()
  const stopped = r.sender.stop(5000)
  for (let i = 0; i < 3; i++) await accept(r, i)
  t.equal(await stopped, true)
  t.same(batches(r), [['a', 'b'], ['c', 'd'], ['e']])
  t.same(await r.queue.stats(), { pending: 0, deadLetters: 0, oldestAgeMs: 0 })
})

t.test('draining goes on through take failures, until its deadline', async (t) => {
  const r = rig({ maxWaitMs: 1000 })
  await appendAll(r, ['a'])
  r.sender.start()
  await turn()
  r.queue.failing.take = 100
  await appendAll(r, ['b'])
  const stopped = r.sender.stop(500)
  await turn()
  await accept(r, 0)
  let result: boolean | undefined
  stopped.then((value) => { result = value }, () => {})
  await r.clock.elapse(500)
  t.equal(result, false)
  t.ok(r.errors.length >= 4, `${r.errors.length} failed takes while draining`)
  t.match(await r.queue.stats(), { pending: 1 }, 'b could not be taken')
  const takes = r.queue.calls.filter((call) => call.operation === 'take').length
  await r.clock.elapse(10_000)
  t.equal(r.queue.calls.filter((call) => call.operation === 'take').length, takes, 'the loop ended at the deadline')
})

t.test('stop before start resolves at once', async (t) => {
  const r = rig()
  await appendAll(r, ['a'])
  t.equal(await r.sender.stop(1000), true)
  r.sender.start()
  await turn()
  t.equal(r.queue.calls.length, 0, 'start after stop does nothing')
})

t.test('a hook that throws is reported to onError, and the batch still frees its slot', async (t) => {
  const r = rig({ maxWaitMs: 0, concurrency: 1, onDelivered: () => { throw new Error('hook broke') } })
  await appendAll(r, ['a', 'b'])
  r.sender.start()
  await turn()
  r.queue.failing.take = 0
  await accept(r, 0)
  t.same(r.errors, ['hook broke'])
  t.equal(r.sender.inFlight, 0)
  await r.queue.append(buf('c'))
  r.sender.notify()
  await turn()
  t.equal(r.calls.length, 2, 'the next batch goes')
})
