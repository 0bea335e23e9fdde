// RedisStore on real redis-servers: the CacheStore contract standalone and on a 3-master Cluster, faults (killed, hung, back), and the client factory.
import { performance } from 'node:perf_hooks'
import t from 'tap'
import type { Test } from 'tap'
import { RedisStore, RedisStoreTimeoutError, escapeGlob } from '../../src/cache/redis-store.js'
import { createRedisClient, DEFAULT_RECONNECT_MAX_DELAY_MS, reconnectDelayMs, type RedisClientOptions, type RedisConnection } from '../../src/redis/index.js'
import { startRedis, startRedisCluster } from '../helpers/redis.js'
import { storeContract, type ReportedOperation } from '../helpers/store-contract.js'
import { waitUntil } from '../helpers/wait.js'

/** Generous for the contract: 1 MiB values on a machine that may be busy with a benchmark. */
const CONTRACT_TIMEOUT_MS = 2000
/** The config's default, for the fault cases. */
const FAULT_TIMEOUT_MS = 100
/** How long a failing command may take, at most, to reject: commandTimeout plus a wide margin for a busy machine. */
const FAIL_FAST_BOUND_MS = 2000

interface Opened {
  store: RedisStore
  connection: RedisConnection
  operations: ReportedOperation[]
}

type Target = Pick<RedisClientOptions, 'url' | 'cluster'>

/** A connection and a store on it, closed in `t.teardown`; resolves once the connection is ready (health UP). */
async function open (t: Test, target: Target, commandTimeoutMs = CONTRACT_TIMEOUT_MS): Promise<Opened> {
  const connection = createRedisClient({ ...target, keyPrefix: 'bw:', connectTimeoutMs: 1000, commandTimeoutMs })
  const operations: ReportedOperation[] = []
  const store = new RedisStore(connection, {
    commandTimeoutMs,
    onOperation: (operation, seconds, error) => operations.push(error === undefined ? { operation, seconds } : { operation, seconds, error })
  })
  t.teardown(() => store.close())
  await waitUntil(() => store.health().status === 'UP', `a ${connection.kind} connection to be ready`, 10_000)
  return { store, connection, operations }
}

const contractFor = (target: Target) => ({
  kind: 'redis' as const,
  make: async (t: Test) => {
    const { store, operations } = await open(t, target)
    return {
      store,
      operations,
      // Redis keeps its own time: wait for the key to go, well past its TTL but within a deadline.
      elapse: (ms: number, gone: () => Promise<boolean>) => waitUntil(gone, `a key to expire after ${ms} ms`, ms + 5000, 20)
    }
  }
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

/** The keys under `prefix` that one master holds, walking SCAN to its end. */
async function keysOn (master: ReturnType<RedisConnection['masters']>[number], prefix: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  for (let calls = 0; calls < 1000; calls++) {
    const [next, keys] = await master.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000)
    found.push(...keys)
    cursor = next
    if (cursor === '0') return found
  }
  throw new Error('SCAN did not finish in 1000 calls')
}

t.test('standalone', async (t) => {
  const redis = await startRedis(t)
  storeContract(t, contractFor({ url: redis.url }))

  t.test('health details name the mode', async (t) => {
    const { store, connection } = await open(t, { url: redis.url })
    t.equal(connection.kind, 'standalone')
    t.same(store.health(), { status: 'UP', details: { mode: 'standalone' } })
    t.same(connection.masters(), [connection.client], 'the one connection is the one master')
    await store.close()
    t.equal(connection.client.status, 'end')
    await t.rejects(store.get(['k']), /Connection is closed/)
    t.same(store.health(), { status: 'DOWN', details: { mode: 'standalone', error: 'Connection is closed.' } })
  })

  t.test('the commands of one event-loop turn are held on the socket and written together at its end', async (t) => {
    const { store, connection } = await open(t, { url: redis.url })
    if (connection.kind !== 'standalone') throw new Error('expected a standalone connection')
    await store.set('{a}:1', Buffer.from('one'), 60_000)
    await store.set('{a}:2', Buffer.from('two'), 60_000)
    const socket = connection.client.stream
    const gets = [store.get(['{a}:1']), store.get(['{a}:2']), store.get(['{a}:missing'])]
    t.ok(socket.writableCorked > 0, 'corked during the turn')
    t.ok(socket.writableLength > 0, 'the three MGETs wait in the socket\'s buffer')
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(socket.writableCorked, 0, 'uncorked at the end of the turn')
    t.same((await Promise.all(gets)).map((values) => values.map((value) => value?.toString() ?? null)), [['one'], ['two'], [null]],
      'each command gets its own answer')
  })
})

t.test('store options are checked; a purge walks SCAN to its end over many small pages', async (t) => {
  const redis = await startRedis(t)
  const connection = createRedisClient({ url: redis.url, keyPrefix: '', connectTimeoutMs: 1000, commandTimeoutMs: 1000 })
  t.teardown(() => connection.close())
  for (const commandTimeoutMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => new RedisStore(connection, { commandTimeoutMs }), { name: 'RangeError', message: `expected options.commandTimeoutMs to be a positive number of milliseconds, got ${commandTimeoutMs}` })
  }
  for (const scanCount of [0, 1.5]) {
    t.throws(() => new RedisStore(connection, { commandTimeoutMs: 100, scanCount }), { name: 'RangeError', message: `expected options.scanCount to be a positive integer, got ${scanCount}` })
  }
  const store = new RedisStore(connection, { commandTimeoutMs: 1000, scanCount: 3 })
  await waitUntil(() => store.health().status === 'UP', 'the connection to be ready')
  for (let i = 0; i < 40; i++) await store.set(`pages:${i}`, buf('v'), 60_000)
  await store.set('other', buf('v'), 60_000)
  t.equal(await store.purge('pages:'), 40)
  t.same(await store.get(['other']), [buf('v')])
})

t.test('cluster of 3 masters', async (t) => {
  const cluster = await startRedisCluster(t, { masters: 3 })
  storeContract(t, contractFor({ cluster: cluster.nodes }))

  t.test('keys with different hash tags land on every master, and purge finds them on each', async (t) => {
    const { store, connection } = await open(t, { cluster: cluster.nodes })
    t.same(store.health(), { status: 'UP', details: { mode: 'cluster' } })
    const masters = connection.masters()
    t.equal(masters.length, 3)
    const prefix = 'spread:'
    const keys = Array.from({ length: 60 }, (_, i) => `${prefix}{t${i}}`)
    for (const key of keys) await store.set(key, buf(key), 60_000)
    const perMaster = await Promise.all(masters.map((master) => keysOn(master, prefix)))
    for (const [i, held] of perMaster.entries()) t.ok(held.length > 0, `master ${i} holds ${held.length} of the keys`)
    t.equal(perMaster.flat().length, keys.length)
    t.equal(await store.purge(prefix), keys.length)
    for (const master of masters) t.same(await keysOn(master, prefix), [], 'nothing left on this master')
    const closing = await timed(store.close())
    t.ok(closing.ms < FAIL_FAST_BOUND_MS, `closed in ${Math.round(closing.ms)} ms`)
    t.equal(connection.client.status, 'end')
  })

  t.test('a multi-key get across hash slots is refused by the Cluster (callers share one tag)', async (t) => {
    const { store } = await open(t, { cluster: cluster.nodes })
    await t.rejects(store.get(['{a}:x', '{b}:x']), /CROSSSLOT/)
  })

  t.test('a hung master: commands for its slots reject within commandTimeout, the others still answer', async (t) => {
    const { store } = await open(t, { cluster: cluster.nodes }, FAULT_TIMEOUT_MS)
    const keys = Array.from({ length: 30 }, (_, i) => `hung:{h${i}}`)
    for (const key of keys) await store.set(key, buf(key), 60_000)
    const hung = cluster.servers[0]!
    hung.pause()
    // Resumed before the cluster bus timeout (5 s), so the other masters never mark it failed.
    t.teardown(() => { if (hung.running) hung.resume() })
    const results = await Promise.all(keys.map((key) => timed(store.get([key]))))
    hung.resume()
    const failed = results.filter((result) => result.error !== undefined)
    const answered = results.filter((result) => result.error === undefined)
    t.ok(failed.length > 0 && answered.length > 0, `${failed.length} timed out, ${answered.length} answered`)
    for (const result of failed) {
      t.type(result.error, RedisStoreTimeoutError)
      // A timer counts from libuv's loop time, taken when the loop turned: with 30 commands sent in one turn, the last
      // ones' own clocks start a few ms after it (CI measured 94.6 ms for 100). Waited for, not refused at once.
      t.ok(result.ms >= FAULT_TIMEOUT_MS - 15 && result.ms < FAIL_FAST_BOUND_MS, `rejected after ${Math.round(result.ms)} ms`)
    }
    for (const result of answered) t.ok(Buffer.isBuffer(result.value?.[0]), 'the value came back')
    await waitUntil(async () => {
      await Promise.all(keys.map((key) => store.get([key]).catch(() => null)))
      return store.health().status === 'UP'
    }, 'health UP once the master answers again', 10_000, 50)
    t.same(await store.get([keys[0]!]), [buf(keys[0]!)])
  })
})

t.test('a killed Redis: commands reject at once and health is DOWN; restarted: it works again and health is UP', async (t) => {
  const redis = await startRedis(t)
  const { store, operations } = await open(t, { url: redis.url }, FAULT_TIMEOUT_MS)
  await store.set('k', buf('v'), 60_000)
  await redis.kill()

  const results = [
    await timed(store.get(['k'])),
    await timed(store.set('k', buf('v2'), 60_000)),
    await timed(store.delete(['k'])),
    await timed(store.lock('lock', 1000)),
    await timed(store.purge('k'))
  ]
  for (const [i, result] of results.entries()) {
    t.ok(result.error instanceof Error, `command ${i} rejected: ${result.error?.message}`)
    t.ok(result.ms < FAIL_FAST_BOUND_MS, `command ${i} rejected after ${Math.round(result.ms)} ms`)
  }
  const health = store.health()
  t.equal(health.status, 'DOWN')
  t.match(health.details, { mode: 'standalone', error: String })
  t.match(operations.at(-1), { operation: 'set', error: Error }, 'the failed lock was reported as a failed set')

  await redis.restart()
  // No command needed: the reconnect alone brings health back.
  await waitUntil(() => store.health().status === 'UP', 'health UP after the restart', 10_000, 20)
  t.same(await store.get(['k']), [null], 'the restarted Redis kept nothing (no persistence)')
  await store.set('k', buf('back'), 60_000)
  t.same(await store.get(['k']), [buf('back')])
})

t.test('a command in flight when the connection drops rejects then, not at its timeout', async (t) => {
  const redis = await startRedis(t)
  const { store } = await open(t, { url: redis.url }, 10_000)
  redis.pause()
  const pending = timed(store.get(['k']))
  // Killed while the GET waits for its answer: the socket closes under it.
  await redis.kill()
  const result = await pending
  t.ok(result.error instanceof Error && !(result.error instanceof RedisStoreTimeoutError), `rejected with: ${result.error?.message}`)
  t.ok(result.ms < FAIL_FAST_BOUND_MS, `rejected after ${Math.round(result.ms)} ms, not after the 10 s timeout`)
  t.equal(store.health().status, 'DOWN')
})

t.test('a hung Redis: a command rejects after commandTimeout, health is DOWN until it answers again', async (t) => {
  const redis = await startRedis(t)
  const { store, operations } = await open(t, { url: redis.url }, FAULT_TIMEOUT_MS)
  await store.set('k', buf('v'), 60_000)
  redis.pause()
  t.teardown(() => { if (redis.running) redis.resume() })
  const result = await timed(store.get(['k']))
  t.type(result.error, RedisStoreTimeoutError)
  t.match(result.error, { message: `Redis did not answer MGET within ${FAULT_TIMEOUT_MS} ms`, code: 'ETIMEDOUT', command: 'MGET', timeoutMs: FAULT_TIMEOUT_MS })
  t.ok(result.ms >= FAULT_TIMEOUT_MS - 5 && result.ms < FAIL_FAST_BOUND_MS, `rejected after ${Math.round(result.ms)} ms`)
  t.same(store.health(), { status: 'DOWN', details: { mode: 'standalone', error: `Redis did not answer MGET within ${FAULT_TIMEOUT_MS} ms` } })
  t.match(operations.at(-1), { operation: 'get', error: RedisStoreTimeoutError })

  redis.resume()
  await waitUntil(async () => {
    await store.get(['k']).catch(() => null)
    return store.health().status === 'UP'
  }, 'health UP once Redis answers again', 10_000, 20)
  t.same(await store.get(['k']), [buf('v')])
})

t.test('a password in the URL works; a missing one leaves the store DOWN', async (t) => {
  const redis = await startRedis(t, { password: 'p@ss:w/rd' })
  const { store } = await open(t, { url: redis.url })
  await store.set('k', buf('v'), 60_000)
  t.same(await store.get(['k']), [buf('v')])

  const errors: Error[] = []
  const anonymous = createRedisClient({ url: `redis://127.0.0.1:${redis.port}`, keyPrefix: '', connectTimeoutMs: 1000, commandTimeoutMs: 1000, onError: (error) => errors.push(error) })
  const refused = new RedisStore(anonymous, { commandTimeoutMs: 1000 })
  t.teardown(() => refused.close())
  await waitUntil(() => errors.length > 0, 'an authentication error', 5000)
  t.match(errors[0]?.message, /NOAUTH|Authentication required/)
  await t.rejects(refused.get(['k']))
  t.equal(refused.health().status, 'DOWN')
})

t.test('createRedisClient', async (t) => {
  const base = { keyPrefix: 'bw:', connectTimeoutMs: 1000, commandTimeoutMs: 100 }

  t.test('checks its options, naming them, and never prints a password', async (t) => {
    const cases: Array<[Partial<RedisClientOptions>, string]> = [
      [{ url: 'redis://a', cluster: ['redis://b'] }, 'expected exactly one of options.url and options.cluster, got both'],
      [{}, 'expected exactly one of options.url and options.cluster, got neither'],
      [{ url: null, cluster: null }, 'expected exactly one of options.url and options.cluster, got neither'],
      [{ url: 'http://user:secret@host:6379' }, 'expected options.url to be a redis:// or rediss:// URL, got http://user:***@host:6379'],
      [{ url: 'redis://:secret@host:port' }, 'expected options.url to be a redis:// or rediss:// URL, got redis://:***@host:port'],
      [{ url: 'localhost:6379' }, 'expected options.url to be a redis:// or rediss:// URL, got localhost:6379'],
      [{ cluster: [] }, 'expected options.cluster to list at least one node, got []'],
      [{ cluster: ['redis://a:1', 'rediss://a:2'] }, 'expected options.cluster[1] to use the scheme and credentials of options.cluster[0], got rediss://a:2'],
      [{ cluster: ['redis://:one@a:1', 'redis://:secret@a:2'] }, 'expected options.cluster[1] to use the scheme and credentials of options.cluster[0], got redis://:***@a:2'],
      [{ cluster: ['redis://a:1', 'nope'] }, 'expected options.cluster[1] to be a redis:// or rediss:// URL, got nope'],
      [{ url: 'redis://a', connectTimeoutMs: 0 }, 'expected options.connectTimeoutMs to be a positive number of milliseconds, got 0'],
      [{ url: 'redis://a', commandTimeoutMs: Number.NaN }, 'expected options.commandTimeoutMs to be a positive number of milliseconds, got NaN'],
      [{ url: 'redis://a', keyPrefix: 1 as unknown as string }, 'expected options.keyPrefix to be a string, got number']
    ]
    for (const [options, message] of cases) {
      t.throws(() => createRedisClient({ ...base, ...options }), { name: 'TypeError', message }, message)
    }
  })

  t.test('reconnects with a doubling, capped delay', async (t) => {
    t.same([0, 1, 2, 3, 4, 5, 6, 7, 100, 1e9].map(reconnectDelayMs), [50, 50, 100, 200, 400, 800, 1000, 1000, 1000, 1000])
    t.equal(DEFAULT_RECONNECT_MAX_DELAY_MS, 1000)
  })

  t.test('with Redis away, a command fails at once instead of waiting in a queue, and close does not hang', async (t) => {
    const redis = await startRedis(t)
    await redis.stop()
    const errors: Error[] = []
    const connection = createRedisClient({ ...base, url: redis.url, onError: (error) => errors.push(error) })
    t.equal(connection.kind, 'standalone')
    t.equal(connection.keyPrefix, 'bw:')
    t.equal(connection.client.options.keyPrefix, '', "ioredis' keyPrefix is not used: the cache passes full keys")
    const result = await timed(connection.client.get('k'))
    t.match(result.error, { message: /enableOfflineQueue options is false/ })
    t.ok(result.ms < 50, `rejected after ${Math.round(result.ms)} ms`)
    await waitUntil(() => errors.length > 0, 'a connection error reaching onError', 5000)
    t.match(errors[0], { code: 'ECONNREFUSED' })
    const closing = await timed(connection.close())
    t.ok(closing.ms < 200, `closed in ${Math.round(closing.ms)} ms: between reconnect attempts there is nothing to wait for`)
    await connection.close()
  })

  t.test('a cluster client takes credentials and TLS from the node URLs, for every node', async (t) => {
    // Unreachable on purpose (port 1, a .invalid name): nothing here may reach a real Redis, least of all one on :6379.
    const connection = createRedisClient({ ...base, cluster: ['rediss://user:p%40ss@127.0.0.1:1', 'rediss://user:p%40ss@[::1]:2', 'rediss://user:p%40ss@node.invalid'] })
    t.teardown(() => connection.close())
    t.equal(connection.kind, 'cluster')
    if (connection.kind !== 'cluster') return
    t.match(connection.client.options, {
      enableAutoPipelining: false,
      enableOfflineQueue: false,
      redisOptions: { username: 'user', password: 'p@ss', tls: {}, commandTimeout: 100, connectTimeout: 1000, maxRetriesPerRequest: 0 }
    })
    // startupNodes is private in ioredis' types: read it to check the URLs were taken apart right (IPv6, default port).
    t.same((connection.client as unknown as { startupNodes: unknown }).startupNodes, [{ host: '127.0.0.1', port: 1 }, { host: '::1', port: 2 }, { host: 'node.invalid', port: 6379 }])
  })
})
