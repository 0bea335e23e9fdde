// The eviction policy of deploy/k8s on a real redis-server: with volatile-lru a full node drops cache entries (all with a
// TTL) and keeps every queued bulk item (a stream, no TTL); once only queues are left, an append fails instead of a loss.
import t from 'tap'
import { StreamQueue } from '../../src/bulk/index.js'
import { RedisStore } from '../../src/cache/index.js'
import { createRedisClient } from '../../src/redis/index.js'
import { startRedis } from '../helpers/redis.js'
import { waitUntil } from '../helpers/wait.js'

const COMMAND_TIMEOUT_MS = 2000
/** Small enough that a few MiB of cache entries overflow it; a fresh redis-server uses about 1 MiB. */
const MAXMEMORY = '4mb'

t.test('volatile-lru: cache entries are evicted, queued bulk items never are; a full queue refuses the append', async (t) => {
  const redis = await startRedis(t)
  await redis.cli('config', 'set', 'maxmemory', MAXMEMORY)
  await redis.cli('config', 'set', 'maxmemory-policy', 'volatile-lru')
  const connection = createRedisClient({ url: redis.url, keyPrefix: 'bw:', connectTimeoutMs: 1000, commandTimeoutMs: COMMAND_TIMEOUT_MS })
  const store = new RedisStore(connection, { commandTimeoutMs: COMMAND_TIMEOUT_MS })
  t.teardown(() => store.close())
  await waitUntil(() => store.health().status === 'UP', 'the connection to be ready', 10_000)
  const queue = new StreamQueue(connection, { route: 'events', consumer: 'gw-1', commandTimeoutMs: COMMAND_TIMEOUT_MS })

  const item = Buffer.alloc(1024, 'q')
  for (let i = 0; i < 100; i++) await queue.append(item)
  // Twice maxmemory of cache entries: every set succeeds, older entries make room.
  const entry = Buffer.alloc(4096, 'c')
  for (let i = 0; i < 2048; i++) await store.set(`entry-${i}`, entry, 60_000)
  const evicted = async (): Promise<number> => Number(/evicted_keys:(\d+)/.exec(await redis.cli('info', 'stats'))?.[1])
  t.ok(await evicted() > 0, 'cache entries were evicted')
  t.equal(await redis.cli('xlen', queue.keys.stream), '100', 'every queued item is still in the stream')

  // With nothing volatile left to evict, a write past maxmemory is refused: the caller learns the item was not taken.
  for (let i = 0; i < 2048; i++) await store.delete([`entry-${i}`])
  const before = await evicted()
  let appended = 100
  let refused: unknown
  while (refused === undefined && appended < 10_000) {
    try {
      await queue.append(Buffer.alloc(4096, 'q'))
      appended++
    } catch (err) {
      refused = err
    }
  }
  t.match(refused, { code: 'BW_ERR_BULK_QUEUE_UNAVAILABLE', statusCode: 503, message: /OOM/ }, 'an append past maxmemory fails (503 to the client) with Redis\' OOM error')
  t.equal(await evicted(), before, 'nothing was evicted to make room for it')
  t.equal(await redis.cli('xlen', queue.keys.stream), String(appended), 'every item an append accepted is in the stream')
})
