// The BulkQueue contract: the same cases run against every queue (memory, Redis, Redis Cluster), as store-contract.ts does for the cache.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Test } from 'tap'
import type { BulkQueue, QueuedItem } from '../../src/bulk/index.js'
import { waitUntil } from './wait.js'

/** Where a queue for one case reads and who it is: queues made with one route share its items when durable. */
export interface QueueSpec {
  readonly route: string
  readonly consumer: string
  /** @default the queue's own default */
  readonly claimAfterMs?: number
}

export interface QueueContract {
  /** Whether the queue must say it is durable; the restart and claim cases run only then. */
  readonly durable: boolean
  /** Builds a queue; whatever it opens is closed in `t.teardown`. */
  readonly make: (t: Test, spec: QueueSpec) => Promise<BulkQueue>
  /**
   * Lets `ms` pass on the queue's clock: a fake clock jumps; a real Redis keeps its own time, and the case then polls
   * until a deadline.
   */
  readonly elapse: (ms: number) => void
  /** The queue's wall clock, in ms since the epoch: a fake one, or Date.now for Redis on this host. */
  readonly now: () => number
}

let routes = 0

/** A route of its own for each case, so cases sharing one Redis never see each other's items. */
function freshRoute (): string {
  return `qc${++routes}-${randomBytes(4).toString('hex')}`
}

const buf = (text: string): Buffer => Buffer.from(text, 'utf8')
const texts = (items: readonly QueuedItem[]): string[] => items.map((item) => item.body.toString('utf8'))
const ids = (items: ReadonlyArray<{ readonly id: string }>): string[] => items.map((item) => item.id)

/** Entry ids compared as Redis orders them: `<ms>-<seq>`, both parts numbers. */
function compareIds (a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number)
  const [bm = 0, bs = 0] = b.split('-').map(Number)
  return am - bm || as - bs
}

/** Appends `bodies` one after the other (so their order is defined) and resolves their ids. */
async function appendAll (queue: BulkQueue, bodies: readonly string[]): Promise<string[]> {
  const appended: string[] = []
  for (const body of bodies) appended.push(await queue.append(buf(body)))
  return appended
}

/** Registers the contract's cases under `t`, each against fresh queues from `contract.make`. */
export function queueContract (t: Test, contract: QueueContract): void {
  const { make, durable, elapse, now } = contract
  const fresh = async (t: Test, consumer = 'c1', claimAfterMs?: number): Promise<{ queue: BulkQueue, route: string }> => {
    const route = freshRoute()
    return { queue: await make(t, { route, consumer, ...(claimAfterMs === undefined ? {} : { claimAfterMs }) }), route }
  }

  t.test('says whether it is durable; an empty queue takes nothing and its stats are zero', async (t) => {
    const { queue } = await fresh(t)
    t.equal(queue.durable, durable)
    t.same(await queue.take(10), [])
    t.same(await queue.stats(), { pending: 0, deadLetters: 0, oldestAgeMs: 0 })
    t.same(await queue.deadLetters(10), [])
    t.equal(await queue.redrive(), 0)
  })

  t.test('append resolves increasing ids; take hands items out in order, at most count, each once', async (t) => {
    const { queue } = await fresh(t)
    const before = now()
    const appended = await appendAll(queue, ['a', 'b', 'c', 'd', 'e'])
    for (let i = 1; i < appended.length; i++) t.ok(compareIds(appended[i - 1] as string, appended[i] as string) < 0, `${appended[i - 1]} < ${appended[i]}`)
    const first = await queue.take(2)
    t.same(texts(first), ['a', 'b'])
    t.same(ids(first), appended.slice(0, 2))
    for (const item of first) {
      t.equal(item.entryId, item.id, 'a fresh item sits under its own id')
      t.ok(Buffer.isBuffer(item.body))
      t.ok(Math.abs(item.enqueuedAtMs - before) < 60_000, `enqueuedAtMs ${item.enqueuedAtMs} is a time in ms since the epoch`)
    }
    t.same(texts(await queue.take(10)), ['c', 'd', 'e'], 'the rest, and no item twice')
    t.same(await queue.take(10), [], 'nothing is handed out twice')
  })

  t.test('appends made at once get distinct ids, and take hands them out in id order', async (t) => {
    const { queue } = await fresh(t)
    const appended = await Promise.all(Array.from({ length: 50 }, (_, i) => queue.append(buf(`item ${i}`))))
    t.equal(new Set(appended).size, 50)
    const taken = await queue.take(100)
    t.same(ids(taken), [...appended].sort(compareIds))
  })

  t.test('take and deadLetters check their count', async (t) => {
    const { queue } = await fresh(t)
    for (const count of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await t.rejects(queue.take(count), { name: 'RangeError', message: `expected count to be a positive integer, got ${count}` })
      await t.rejects(queue.deadLetters(count), { name: 'RangeError', message: `expected limit to be a positive integer, got ${count}` })
    }
  })

  t.test('ack removes items for good; settling none, or acking twice, is harmless', async (t) => {
    const { queue } = await fresh(t)
    await appendAll(queue, ['a', 'b', 'c'])
    const [a, b, c] = await queue.take(3) as [QueuedItem, QueuedItem, QueuedItem]
    await queue.ack([a, c])
    t.match(await queue.stats(), { pending: 1, deadLetters: 0 })
    await queue.ack([])
    await queue.deadLetter([])
    await queue.ack([a])
    t.match(await queue.stats(), { pending: 1 })
    await queue.ack([b])
    t.same(await queue.stats(), { pending: 0, deadLetters: 0, oldestAgeMs: 0 })
    t.same(await queue.take(10), [])
  })

  t.test('bodies are byte-exact: every byte value, an empty body, 1 MiB', async (t) => {
    const { queue } = await fresh(t)
    const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    // Random bytes contain CR LF and invalid UTF-8, which a text round trip would mangle.
    const mebibyte = randomBytes(1024 * 1024)
    for (const body of [everyByte, Buffer.alloc(0), mebibyte]) await queue.append(body)
    const [bytes, empty, big] = await queue.take(3)
    t.ok(bytes?.body.equals(everyByte), 'all 256 byte values')
    t.ok(Buffer.isBuffer(empty?.body) && empty.body.length === 0, 'an empty body is an empty Buffer')
    t.ok(big?.body.equals(mebibyte), '1 MiB of random bytes')
    await queue.deadLetter([{ item: bytes as QueuedItem, error: 'e' }])
    await queue.redrive()
    const [again] = await queue.take(1)
    t.ok(again?.body.equals(everyByte), 'still byte-exact after a dead letter and a redrive')
  })

  t.test('dead letters keep id, body and error, in order; redrive appends them after the pending items under their ids', async (t) => {
    const { queue } = await fresh(t)
    const before = now()
    const [idA, , idC, idD] = await appendAll(queue, ['a', 'b', 'c', 'd'])
    const [a, b, c] = await queue.take(3) as [QueuedItem, QueuedItem, QueuedItem]
    await queue.deadLetter([{ item: c, error: 'upstream answered 400: {"bad":true}' }, { item: a, error: 'BW_ERR_UPSTREAM_TIMEOUT: too slow' }])
    await queue.ack([b])
    t.match(await queue.stats(), { pending: 1, deadLetters: 2 }, 'd is pending; a and c are dead letters')
    const letters = await queue.deadLetters(10)
    t.same(letters.map(({ id, body, error }) => ({ id, body: body.toString('utf8'), error })), [
      { id: idC, body: 'c', error: 'upstream answered 400: {"bad":true}' },
      { id: idA, body: 'a', error: 'BW_ERR_UPSTREAM_TIMEOUT: too slow' }
    ])
    for (const letter of letters) t.ok(letter.failedAtMs >= before - 1000 && letter.failedAtMs <= now() + 60_000, `failedAtMs ${letter.failedAtMs}`)
    t.same(ids(await queue.deadLetters(1)), [idC], 'at most limit, oldest first')

    await queue.deadLetter([{ item: c, error: 'again' }, { item: b, error: 'acked already' }])
    t.match(await queue.stats(), { deadLetters: 2 }, 'an item already settled is not dead-lettered (again)')

    const [idE] = await appendAll(queue, ['e'])
    t.equal(await queue.redrive(), 2)
    t.match(await queue.stats(), { pending: 4, deadLetters: 0 })
    t.same(await queue.deadLetters(10), [])
    const taken = await queue.take(10)
    t.same(texts(taken), ['d', 'e', 'c', 'a'], 'pending items first, then the dead letters in their order')
    t.same(ids(taken), [idD, idE, idC, idA], 'a redriven item keeps its id')
    for (const item of taken.slice(2)) t.not(item.entryId, item.id, `redriven ${item.id} sits under a new entry id`)
    t.equal(await queue.redrive(), 0, 'nothing left to redrive')
    await queue.ack(taken)
    t.same(await queue.stats(), { pending: 0, deadLetters: 0, oldestAgeMs: 0 }, 'a redriven item acks by its new entry')
  })

  t.test('a redrive moves every dead letter, however many', async (t) => {
    const { queue } = await fresh(t)
    const bodies = Array.from({ length: 250 }, (_, i) => `item ${i}`)
    await appendAll(queue, bodies)
    const taken = await queue.take(250)
    await queue.deadLetter(taken.map((item) => ({ item, error: 'refused' })))
    t.equal(await queue.redrive(), 250)
    t.same(texts(await queue.take(1000)), bodies)
  })

  t.test('stats count taken items as pending, and the oldest age grows', async (t) => {
    const { queue } = await fresh(t)
    await appendAll(queue, ['a', 'b'])
    const [a] = await queue.take(1) as [QueuedItem]
    t.match(await queue.stats(), { pending: 2, deadLetters: 0 })
    elapse(100)
    await waitUntil(async () => (await queue.stats()).oldestAgeMs >= 100, 'the oldest age to reach 100 ms', 5000, 20)
    t.ok((await queue.stats()).oldestAgeMs < 60_000)
    await queue.ack([a])
    await queue.deadLetter([{ item: (await queue.take(1))[0] as QueuedItem, error: 'x' }])
    t.same(await queue.stats(), { pending: 0, deadLetters: 1, oldestAgeMs: 0 }, 'dead letters are not pending')
  })

  t.test('close refuses appends with 503 shutting down; taken items still settle', async (t) => {
    const { queue } = await fresh(t)
    await appendAll(queue, ['a', 'b'])
    const [a, b] = await queue.take(2) as [QueuedItem, QueuedItem]
    await queue.close()
    await t.rejects(queue.append(buf('late')), { code: 'BW_ERR_GATEWAY_SHUTTING_DOWN', statusCode: 503 })
    await queue.ack([a])
    await queue.deadLetter([{ item: b, error: 'x' }])
    t.match(await queue.stats(), { pending: 0, deadLetters: 1 })
    await queue.close()
  })

  if (!durable) return

  t.test('after a restart, the same consumer name gets its own unsettled items back at once, in order, before new ones', async (t) => {
    const route = freshRoute()
    const before = await make(t, { route, consumer: 'gw-1' })
    await appendAll(before, ['a', 'b', 'c', 'd'])
    const [, b] = await before.take(3) as [QueuedItem, QueuedItem, QueuedItem]
    await before.ack([b])
    // The process dies here: a new queue object, same name, same route.
    const after = await make(t, { route, consumer: 'gw-1' })
    const other = await make(t, { route, consumer: 'gw-2' })
    await after.append(buf('e'))
    t.same(texts(await other.take(10)), ['d', 'e'], 'another consumer gets only the new items, not a and c before claimAfterMs')
    await appendAll(after, ['f', 'g'])
    t.same(texts(await after.take(1)), ['a'], 'its own first, one at a time')
    t.same(texts(await after.take(1)), ['c'])
    t.same(texts(await after.take(10)), ['f', 'g'], 'then new ones')
    t.same(await after.take(10), [])
  })

  t.test('another consumer claims an item left untouched for claimAfterMs, not before; a touched one stays with its owner', async (t) => {
    // Long enough that a busy machine does not stall past it between two touches.
    const claimAfterMs = 500
    const route = freshRoute()
    const owner = await make(t, { route, consumer: 'owner', claimAfterMs })
    const rescuer = await make(t, { route, consumer: 'rescuer', claimAfterMs })
    t.equal(owner.claimAfterMs, claimAfterMs)
    await appendAll(owner, ['kept', 'left'])
    const started = performance.now()
    const [kept, left] = await owner.take(2) as [QueuedItem, QueuedItem]
    t.same(await rescuer.take(10), [], 'nothing is claimable yet')
    const claimed: QueuedItem[] = []
    await waitUntil(async () => {
      await owner.touch([kept])
      claimed.push(...await rescuer.take(10))
      return claimed.length > 0
    }, 'the untouched item to be claimed', 10_000, 25)
    const waited = performance.now() - started
    t.ok(waited >= claimAfterMs - 5, `claimed after ${Math.round(waited)} ms`)
    t.same(claimed.map(({ id, entryId, body }) => ({ id, entryId, body: body.toString('utf8') })), [{ id: left.id, entryId: left.entryId, body: 'left' }])
    await rescuer.ack(claimed)
    t.match(await owner.stats(), { pending: 1 }, 'only the touched item is left')
    // Touching stops, as when its owner is killed: then it moves on too.
    await waitUntil(async () => {
      claimed.push(...await rescuer.take(10))
      return claimed.length > 1
    }, 'the item no longer touched to be claimed', 10_000, 25)
    t.same(texts(claimed), ['left', 'kept'])
    await owner.touch([])
  })
}
