// StreamQueue on real redis-servers: the BulkQueue contract standalone and on a 3-master Cluster, the stream's layout, faults, and a sender over it.
import { performance } from 'node:perf_hooks'
import t from 'tap'
import type { Test } from 'tap'
import {
  AsyncSender, BULK_CONSUMER_GROUP, DEFAULT_BULK_CLAIM_AFTER_MS, REDRIVE_CHUNK, StreamQueue, StreamQueueTimeoutError,
  bulkStreamKeys, type BulkItemResult, type QueuedItem, type StreamQueueOptions
} from '../../src/bulk/index.js'
import { createRedisClient, type RedisClientOptions, type RedisConnection } from '../../src/redis/index.js'
import { queueContract, type QueueContract } from '../helpers/queue-contract.js'
import { startRedis, startRedisCluster, type RedisServer } from '../helpers/redis.js'
import { waitUntil } from '../helpers/wait.js'

/** Generous for the contract: 1 MiB bodies on a machine that may be busy with a benchmark. */
const CONTRACT_TIMEOUT_MS = 2000
/** The config's default, for the fault cases. */
const FAULT_TIMEOUT_MS = 100
/** How long a failing command may take, at most, to reject: commandTimeout plus a wide margin for a busy machine. */
const FAIL_FAST_BOUND_MS = 2000

type Target = Pick<RedisClientOptions, 'url' | 'cluster'>

interface Opened {
  queue: StreamQueue
  connection: RedisConnection
}

/** A ready connection and a queue on it, closed in `t.teardown`. */
async function open (t: Test, target: Target, options: Partial<StreamQueueOptions> = {}): Promise<Opened> {
  const connection = createRedisClient({ ...target, keyPrefix: 'bw:', connectTimeoutMs: 1000, commandTimeoutMs: options.commandTimeoutMs ?? CONTRACT_TIMEOUT_MS })
  t.teardown(() => connection.close())
  await waitUntil(() => connection.client.status === 'ready', `a ${connection.kind} connection to be ready`, 10_000)
  const queue = new StreamQueue(connection, { route: 'events', consumer: 'gw-1', commandTimeoutMs: CONTRACT_TIMEOUT_MS, ...options })
  return { queue, connection }
}

const contractFor = (target: Target): QueueContract => ({
  durable: true,
  make: async (t, spec) => (await open(t, target, spec)).queue,
  // Redis keeps its own time: the cases poll until a deadline.
  elapse: () => {},
  now: Date.now
})

/** Runs `promise` and returns what it settled to and how long that took (ms). */
async function timed<T> (promise: Promise<T>): Promise<{ ms: number, value?: T, error?: Error }> {
  const started = performance.now()
  try {
    const value = await promise
    return { ms: performance.now() - started, value }
  } catch (error) {
    return { ms: performance.now() - started, error: error as Error }
  }
}

const buf = (text: string): Buffer => Buffer.from(text, 'utf8')
const texts = (items: readonly QueuedItem[]): string[] => items.map((item) => item.body.toString('utf8'))

t.test('standalone', async (t) => {
  const redis = await startRedis(t)
  const target = { url: redis.url }
  queueContract(t, contractFor(target))

  t.test('one stream per route under the key prefix, a dead-letter stream beside it, both emptied as items settle', async (t) => {
    const { queue, connection } = await open(t, target, { route: 'layout' })
    t.same(queue.keys, { stream: 'bw:bulk:{layout}:stream', dead: 'bw:bulk:{layout}:dead' })
    t.same(bulkStreamKeys('p:', 'r'), { stream: 'p:bulk:{r}:stream', dead: 'p:bulk:{r}:dead' })
    t.equal(queue.claimAfterMs, DEFAULT_BULK_CLAIM_AFTER_MS)
    t.equal(DEFAULT_BULK_CLAIM_AFTER_MS, 30_000)
    const id = await queue.append(buf('{"n":1}'))
    t.match(id, /^\d+-\d+$/, 'the item id is the stream entry id')
    const client = connection.client
    t.same(await client.xrange(queue.keys.stream, '-', '+'), [[id, ['body', '{"n":1}']]])
    const [item] = await queue.take(1) as [QueuedItem]
    t.match(await client.xinfo('GROUPS', queue.keys.stream), [[
      'name', BULK_CONSUMER_GROUP, 'consumers', 1, 'pending', 1
    ]], 'read through the group, pending until settled')
    const before = Date.now()
    await queue.deadLetter([{ item, error: 'upstream answered 422: {"error":"no"}' }])
    t.equal(await client.xlen(queue.keys.stream), 0, 'dead-lettering deletes the entry')
    t.match(await client.xinfo('GROUPS', queue.keys.stream), [['name', BULK_CONSUMER_GROUP, 'consumers', 1, 'pending', 0]])
    const [[, fields]] = await client.xrange(queue.keys.dead, '-', '+') as [[string, string[]]]
    t.same(fields.slice(0, 6), ['id', id, 'body', '{"n":1}', 'error', 'upstream answered 422: {"error":"no"}'])
    t.equal(fields[6], 'failedAt')
    t.ok(Number(fields[7]) >= before && Number(fields[7]) <= Date.now(), 'failedAt is when, in ms since the epoch')
    t.equal(await queue.redrive(), 1)
    t.equal(await client.xlen(queue.keys.dead), 0)
    const [[redrivenEntry, redriven]] = await client.xrange(queue.keys.stream, '-', '+') as [[string, string[]]]
    t.same(redriven, ['id', id, 'body', '{"n":1}'], 'a redriven entry carries its id')
    const [again] = await queue.take(1) as [QueuedItem]
    t.same({ id: again.id, entryId: again.entryId }, { id, entryId: redrivenEntry })
    t.equal(again.enqueuedAtMs, Number(redrivenEntry.split('-')[0]))
    await queue.ack([again])
    t.equal(await client.xlen(queue.keys.stream), 0, 'acknowledging deletes the entry: the stream holds only unsettled items')
  })

  t.test('a redrive goes in chunks, each atomic', async (t) => {
    const { queue, connection } = await open(t, target, { route: 'chunks' })
    const count = REDRIVE_CHUNK * 2
    for (let i = 0; i < count; i++) await queue.append(buf(`${i}`))
    const taken = await queue.take(count)
    await queue.deadLetter(taken.map((item) => ({ item, error: 'x' })))
    t.equal(await queue.redrive(), count, 'exactly two full chunks, then an empty one')
    t.equal(await connection.client.xlen(queue.keys.dead), 0)
  })

  t.test('a stream deleted from under the queue: the group is made again, and items appended since are taken', async (t) => {
    const { queue, connection } = await open(t, target, { route: 'vanished' })
    await queue.append(buf('a'))
    t.same(texts(await queue.take(10)), ['a'])
    await connection.client.del(queue.keys.stream)
    await queue.append(buf('b'))
    t.same(texts(await queue.take(10)), ['b'], 'NOGROUP: the group is created from 0, so b is not skipped')
  })

  t.test('two queues creating the group at once: one makes it, the other finds it made', async (t) => {
    const first = await open(t, target, { route: 'race', consumer: 'one' })
    const second = await open(t, target, { route: 'race', consumer: 'two' })
    await first.queue.append(buf('a'))
    const [one, two] = await Promise.all([first.queue.take(10), second.queue.take(10)])
    t.same([...texts(one), ...texts(two)], ['a'], 'a goes to one of them only')
  })

  t.test('an entry deleted while pending is acknowledged and skipped when its consumer comes back', async (t) => {
    const { queue, connection } = await open(t, target, { route: 'deleted' })
    await queue.append(buf('a'))
    await queue.append(buf('b'))
    const [a] = await queue.take(2) as [QueuedItem]
    await connection.client.xdel(queue.keys.stream, a.entryId)
    const { queue: restarted } = await open(t, target, { route: 'deleted' })
    t.same(texts(await restarted.take(10)), ['b'])
    t.match(await connection.client.xpending(queue.keys.stream, BULK_CONSUMER_GROUP), [1], 'only b is pending now')
  })

  t.test('a user not allowed XGROUP: take rejects with the error rather than retrying', async (t) => {
    await redis.cli('acl', 'setuser', 'no-xgroup', 'on', '>secret', '~*', '&*', '+@all', '-xgroup')
    const { queue } = await open(t, { url: redis.url.replace('redis://', 'redis://no-xgroup:secret@') }, { route: 'acl' })
    await t.rejects(queue.take(1), /NOPERM/)
  })

  t.test('checks its options, naming them', async (t) => {
    const { connection } = await open(t, target)
    const base = { route: 'r', consumer: 'c', commandTimeoutMs: 100 }
    const cases: Array<[Partial<StreamQueueOptions>, string, string]> = [
      [{ route: '' }, 'TypeError', 'expected options.route to be a non-empty string, got ""'],
      [{ consumer: undefined as unknown as string }, 'TypeError', 'expected options.consumer to be a non-empty string, got undefined'],
      [{ commandTimeoutMs: 0 }, 'RangeError', 'expected options.commandTimeoutMs to be a positive number of milliseconds, got 0'],
      [{ claimAfterMs: 1.5 }, 'RangeError', 'expected options.claimAfterMs to be a positive integer of milliseconds, got 1.5'],
      [{ claimAfterMs: 0 }, 'RangeError', 'expected options.claimAfterMs to be a positive integer of milliseconds, got 0']
    ]
    for (const [options, name, message] of cases) t.throws(() => new StreamQueue(connection, { ...base, ...options }), { name, message }, message)
  })

  t.test('a sender over the stream: batches delivered and acknowledged, refusals dead-lettered, ids sent along', async (t) => {
    const { queue } = await open(t, target, { route: 'sender' })
    const batches: string[][] = []
    const sender = new AsyncSender({
      queue,
      batchSize: 3,
      maxWaitMs: 10,
      dispatch: async (items) => {
        batches.push(items.map((item) => item.id))
        return items.map((item): BulkItemResult => ({ status: item.body.toString() === 'bad' ? 400 : 200, body: buf('{}'), contentType: 'application/json' }))
      }
    })
    const appended: string[] = []
    for (const body of ['a', 'b', 'bad', 'c']) appended.push(await queue.append(buf(body)))
    sender.start()
    sender.notify()
    await waitUntil(async () => (await queue.stats()).pending === 0, 'every item settled', 10_000, 20)
    t.same(batches.flat(), appended, 'in order, each once')
    t.equal(batches[0]?.length, 3, 'a full batch first')
    t.match(await queue.stats(), { pending: 0, deadLetters: 1 })
    t.same((await queue.deadLetters(10)).map((letter) => letter.id), [appended[2]])
    t.equal(await sender.stop(1000), true)
  })

  t.test('a sender killed mid-batch loses nothing: its restart under the same name sends the batch again', async (t) => {
    const { queue } = await open(t, target, { route: 'crash' })
    let hang = true
    const seen: string[][] = []
    const dispatch = async (items: readonly QueuedItem[]): Promise<BulkItemResult[]> => {
      seen.push(texts(items))
      // The first process dies while its upstream request is out: this answer never comes.
      if (hang) return await new Promise<never>(() => {})
      return items.map(() => ({ status: 202, body: buf(''), contentType: 'application/json' }))
    }
    const crashed = new AsyncSender({ queue, dispatch, maxWaitMs: 0 })
    for (const body of ['a', 'b']) await queue.append(buf(body))
    crashed.start()
    crashed.notify()
    await waitUntil(() => seen.length === 1, 'the first batch to go out')
    t.equal(await crashed.stop(0), false, 'cut off: the batch is still out')
    hang = false
    const { queue: restartedQueue } = await open(t, target, { route: 'crash' })
    const restarted = new AsyncSender({ queue: restartedQueue, dispatch, maxWaitMs: 0 })
    restarted.start()
    await waitUntil(async () => (await restartedQueue.stats()).pending === 0, 'the batch to be delivered again', 10_000, 20)
    t.same(seen, [['a', 'b'], ['a', 'b']], 'at least once: the same items again, same ids')
    t.equal(await restarted.stop(1000), true)
  })
})

t.test('cluster of 3 masters', async (t) => {
  const cluster = await startRedisCluster(t, { masters: 3 })
  const target = { cluster: cluster.nodes }
  queueContract(t, contractFor(target))

  t.test("a route's two keys share one hash slot, and routes spread over the masters", async (t) => {
    const server = cluster.servers[0] as RedisServer
    const slots = new Set<string>()
    for (let i = 0; i < 30; i++) {
      const { stream, dead } = bulkStreamKeys('bw:', `route-${i}`)
      const slot = await server.cli('cluster', 'keyslot', stream)
      t.equal(await server.cli('cluster', 'keyslot', dead), slot)
      slots.add(slot)
    }
    t.ok(slots.size > 3, `${slots.size} slots for 30 routes`)
  })
})

t.test('a killed Redis: append rejects at once with 503, take too; restarted: the queue works again', async (t) => {
  const redis = await startRedis(t)
  const { queue } = await open(t, { url: redis.url }, { route: 'killed', commandTimeoutMs: FAULT_TIMEOUT_MS })
  await queue.append(buf('a'))
  await redis.kill()
  const appended = await timed(queue.append(buf('b')))
  t.match(appended.error, { code: 'BW_ERR_BULK_QUEUE_UNAVAILABLE', statusCode: 503, message: /^route killed: the item was not stored in Redis: / })
  t.type((appended.error as Error & { cause?: unknown }).cause, Error)
  t.ok(appended.ms < FAIL_FAST_BOUND_MS, `append rejected after ${Math.round(appended.ms)} ms`)
  const taken = await timed(queue.take(1))
  t.type(taken.error, Error)
  t.ok(taken.ms < FAIL_FAST_BOUND_MS, `take rejected after ${Math.round(taken.ms)} ms`)

  await redis.restart()
  await waitUntil(async () => (await queue.append(buf('c')).catch(() => null)) !== null, 'an append to go through after the restart', 10_000, 20)
  t.same(texts(await queue.take(10)), ['c'], 'the restarted Redis kept nothing (no persistence); the group is made again')
})

t.test('a hung Redis: append rejects after commandTimeout, naming the command', async (t) => {
  const redis = await startRedis(t)
  const { queue } = await open(t, { url: redis.url }, { route: 'hung', commandTimeoutMs: FAULT_TIMEOUT_MS })
  redis.pause()
  t.teardown(() => { if (redis.running) redis.resume() })
  const result = await timed(queue.append(buf('a')))
  t.match(result.error, { code: 'BW_ERR_BULK_QUEUE_UNAVAILABLE', message: `route hung: the item was not stored in Redis: Redis did not answer XADD within ${FAULT_TIMEOUT_MS} ms` })
  const cause = (result.error as Error & { cause?: unknown }).cause
  t.type(cause, StreamQueueTimeoutError)
  t.match(cause, { code: 'ETIMEDOUT', command: 'XADD', timeoutMs: FAULT_TIMEOUT_MS })
  t.ok(result.ms >= FAULT_TIMEOUT_MS - 5 && result.ms < FAIL_FAST_BOUND_MS, `rejected after ${Math.round(result.ms)} ms`)
  redis.resume()
})
