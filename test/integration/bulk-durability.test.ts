// Bulk durability with the real CLI in child processes: kill -9 mid-ingestion loses no acknowledged item, SIGTERM flushes or leaves items in the stream.
import t, { type Test } from 'tap'
import { Pool } from 'undici'
import { startCli, writeConfig, type RunningGateway } from '../helpers/cli.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { startUpstream, type Upstream, type UpstreamHandler } from '../helpers/upstream.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

const BULK_PATH = '/api/events/_bulk'
/** The route's stream under the default key prefix (`bw:`), and the group every instance reads it through. */
const STREAM_KEY = 'bw:bulk:{events}:stream'
const GROUP = 'breakwater'

interface Answer {
  status: number
  body: string
}

/** A client pool to the gateway, destroyed in teardown (a killed gateway leaves nothing to close gracefully). */
function clientOf (t: Test, gw: RunningGateway, connections = 20): Pool {
  const pool = new Pool(gw.url, { connections })
  t.teardown(() => pool.destroy())
  return pool
}

async function post (pool: Pool, body: string): Promise<Answer> {
  const res = await pool.request({ method: 'POST', path: '/api/events', headers: { 'content-type': 'application/json' }, body })
  return { status: res.statusCode, body: await res.body.text() }
}

async function bulkStatus (pool: Pool): Promise<{ pending: number, inFlight: number }> {
  const res = await pool.request({ method: 'GET', path: '/actuator/bulk' })
  return ((await res.body.json()) as { routes: { events: { pending: number, inFlight: number } } }).routes.events
}

/** A bulk endpoint answering each item `{"n": k}` with `{"status": 201, "n": k}`. */
const bulkEndpoint: UpstreamHandler = (_req, res, body) => {
  const batch = JSON.parse(body.toString('utf8')) as Array<{ n: number }>
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify(batch.map((item) => ({ status: 201, n: item.n }))))
}

/**
 * An origin that holds every batch unanswered until `heal()`, then answers them all as `bulkEndpoint` and records
 * the ids of each batch it took (X-Bulk-Item-Ids) in `delivered`.
 */
async function healingOrigin (t: Test): Promise<{ origin: Upstream, held: () => number, heal: () => void, delivered: string[] }> {
  let healthy = false
  let held = 0
  const delivered: string[] = []
  const origin = await startUpstream(t, (req, res, body) => {
    if (!healthy) {
      // Never answered: the gateway that sent it dies or gives up with the batch in flight.
      held++
      return
    }
    delivered.push(...String(req.headers['x-bulk-item-ids']).split(','))
    bulkEndpoint(req, res, body)
  })
  return { origin, held: () => held, heal: () => { healthy = true }, delivered }
}

/** The config of a gateway with one async bulk route on `redis`. */
async function asyncConfig (t: Test, origin: Upstream, redis: RedisServer, shutdownTimeout: string, bulk: string): Promise<string> {
  return await writeConfig(t, `
server:
  host: 127.0.0.1
  port: 0
  shutdownTimeout: ${shutdownTimeout}
redis: {url: '${redis.url}', commandTimeout: 1s}
routes:
  - id: events
    prefix: /api/events
    upstream: ${origin.url}
    # Longer than any test: a held batch is never timed out and retried meanwhile.
    timeout: 60s
    bulk: {path: ${BULK_PATH}, mode: async, ${bulk}}
`)
}

/** Waits until the gateway created the route's consumer group: its Redis connection is up, and items are taken. */
async function groupCreated (redis: RedisServer): Promise<void> {
  await waitUntil(async () => (await redis.cli('xinfo', 'groups', STREAM_KEY).catch(() => '')).split('\n').includes(GROUP), 'the route\'s consumer group', 10_000, 20)
}

const xlen = async (redis: RedisServer): Promise<number> => Number(await redis.cli('xlen', STREAM_KEY))
/** Entries read by some consumer and not acknowledged (XPENDING's summary count). */
const xpending = async (redis: RedisServer): Promise<number> => Number((await redis.cli('xpending', STREAM_KEY, GROUP)).split('\n')[0])

t.test('kill -9 mid-ingestion: every item acknowledged with 202 reaches the upstream after a restart under the same instance id', async (t) => {
  const redis = await startRedis(t)
  const { origin, held, heal, delivered } = await healingOrigin(t)
  const file = await asyncConfig(t, origin, redis, '2s', 'batchSize: 20, maxWait: 5ms, concurrency: 2')
  const env = { BREAKWATER_INSTANCE_ID: 'gw-a' }
  const first = await startCli(t, file, { env })
  await groupCreated(redis)
  const pool = clientOf(t, first)

  const total = 300
  const killAfter = 100
  const acknowledged: string[] = []
  let failed = 0
  let next = 0
  // 20 clients post the items one after another; the 100th 202 kills the gateway with the others' requests under way.
  const client = async (): Promise<void> => {
    while (next < total) {
      const n = next++
      try {
        const answer = await post(pool, JSON.stringify({ n }))
        if (answer.status !== 202) throw new Error(`${answer.status} ${answer.body}`)
        acknowledged.push((JSON.parse(answer.body) as { id: string }).id)
        if (acknowledged.length === killAfter) first.child.kill('SIGKILL')
      } catch {
        // Refused, or the gateway died under the request: not acknowledged, so the client would send it again.
        failed++
      }
    }
  }
  await withDeadline(Promise.all(Array.from({ length: 20 }, client)), 'the 300 posts to be answered or fail', 15_000)
  t.same(await withDeadline(first.exit, 'the killed gateway to exit'), { code: null, signal: 'SIGKILL' })
  t.ok(acknowledged.length >= killAfter && acknowledged.length < total, `killed mid-ingestion: ${acknowledged.length} acknowledged, ${failed} not`)
  t.equal(acknowledged.length + failed, total)
  t.ok(held() > 0, `batches were in flight at the upstream when the gateway died (${held()})`)
  const stored = await xlen(redis)
  t.ok(stored >= acknowledged.length, `every acknowledged item is in the stream (${stored} entries for ${acknowledged.length} acknowledged)`)
  t.ok(await xpending(redis) > 0, 'some were taken by gw-a and never acknowledged: only a restart under its name gets them back at once')

  heal()
  await startCli(t, file, { env })
  const missing = (): string[] => { const got = new Set(delivered); return acknowledged.filter((id) => !got.has(id)) }
  await waitUntil(() => missing().length === 0, 'every acknowledged id at the upstream', 15_000, 20)
  t.same(missing(), [], 'no acknowledged item lost')
  await waitUntil(async () => await xlen(redis) === 0, 'the stream to be emptied by the acknowledgements', 5_000)
  t.equal(await xpending(redis), 0, 'nothing left pending in the group')
  t.ok(new Set(delivered).size >= stored, 'every stored item was delivered, including those whose 202 never reached its client')
})

t.test('kill -9, then another instance claims the dead one\'s items once they were untouched for claimAfter', async (t) => {
  const redis = await startRedis(t)
  const { origin, held, heal, delivered } = await healingOrigin(t)
  const file = await asyncConfig(t, origin, redis, '2s', 'batchSize: 10, maxWait: 5ms, concurrency: 2, claimAfter: 1s')
  const first = await startCli(t, file, { env: { BREAKWATER_INSTANCE_ID: 'gw-a' } })
  await groupCreated(redis)
  const pool = clientOf(t, first)
  const answers = await Promise.all(Array.from({ length: 20 }, async (_, n) => await post(pool, JSON.stringify({ n }))))
  t.same(answers.map((answer) => answer.status), Array.from({ length: 20 }, () => 202))
  const acknowledged = answers.map((answer) => (JSON.parse(answer.body) as { id: string }).id)
  await waitUntil(() => held() === 2, 'both batches at the upstream')
  // The upstream saw them just after gw-a took them: their idle time counts from about now.
  const takenAt = Date.now()
  first.child.kill('SIGKILL')
  await withDeadline(first.exit, 'the killed gateway to exit')
  const pending = await xpending(redis)
  t.ok(pending > 0, `gw-a died holding ${pending} items, none acknowledged`)

  heal()
  await startCli(t, file, { env: { BREAKWATER_INSTANCE_ID: 'gw-b' } })
  const missing = (): string[] => { const got = new Set(delivered); return acknowledged.filter((id) => !got.has(id)) }
  await waitUntil(() => missing().length === 0, 'gw-b to deliver gw-a\'s items', 10_000, 20)
  t.ok(Date.now() - takenAt >= 900, 'the held items were claimed only once untouched for claimAfter (1 s)')
  await waitUntil(async () => await xlen(redis) === 0, 'the stream to be emptied by the acknowledgements', 5_000)
})

t.test('the startup log says an async route without redis: is not durable, and warns of a large X-Bulk-Item-Ids', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const file = await writeConfig(t, `
server: {host: 127.0.0.1, port: 0}
routes:
  - id: audit
    prefix: /api/audit
    upstream: ${origin.url}
    bulk: {path: /api/audit/_bulk, mode: async}
`)
  const gw = await startCli(t, file)
  t.ok(gw.logs.some((line) => line.level === 40 && line.route === 'audit' && /runs async in memory: without redis:, an accepted item is lost if this process dies/.test(String(line.msg))),
    'a warning at startup names the route and the risk')
  t.ok(gw.logs.some((line) => line.level === 40 && line.batchSize === 1000 && /X-Bulk-Item-Ids of a full batch takes about 17 KB/.test(String(line.msg))),
    'the default batchSize warns about the size of X-Bulk-Item-Ids')
  gw.child.kill('SIGKILL')
  await gw.exit
})

t.test('SIGTERM, sync mode: the waiting batch goes at once, every client gets its 201, exit 0', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const file = await writeConfig(t, `
server: {host: 127.0.0.1, port: 0, shutdownTimeout: 5s}
routes:
  - id: events
    prefix: /api/events
    upstream: ${origin.url}
    bulk: {path: ${BULK_PATH}, batchSize: 1000, maxWait: 60s}
`)
  const gw = await startCli(t, file)
  const pool = clientOf(t, gw, 4)
  const answers = Promise.all([1, 2, 3].map(async (n) => await post(pool, JSON.stringify({ n }))))
  await waitUntil(async () => (await bulkStatus(pool)).pending === 3, 'three items waiting for maxWait')
  t.same(origin.received, [], 'nothing sent before the signal')

  const signalledAt = Date.now()
  gw.child.kill('SIGTERM')
  const answered = await withDeadline(answers, 'the three answers', 5_000)
  t.same(answered.map((answer) => answer.status), [201, 201, 201])
  t.same(answered.map((answer) => JSON.parse(answer.body)), [1, 2, 3].map((n) => ({ status: 201, n })), 'each client got its own element')
  t.same(await withDeadline(gw.exit, 'the gateway to exit', 5_000), { code: 0, signal: null })
  t.ok(Date.now() - signalledAt < 3_000, `exited once flushed (${Date.now() - signalledAt} ms), not at maxWait or shutdownTimeout`)
  t.equal(origin.received.length, 1, 'one batch')
  t.equal(origin.received[0]?.body.toString('utf8'), '[{"n":1},{"n":2},{"n":3}]')
})

t.test('SIGTERM, async with Redis: exit within shutdownTimeout with a batch held upstream; its items stay in the stream and go after a restart', async (t) => {
  const redis = await startRedis(t)
  const { origin, held, heal, delivered } = await healingOrigin(t)
  const shutdownTimeoutMs = 1_000
  // maxWait far off: the batch goes at its fifth item, so all five are in flight however slow the machine (at 5 ms a
  // loaded machine split them, and the second batch waited behind the held one).
  const file = await asyncConfig(t, origin, redis, `${shutdownTimeoutMs}ms`, 'batchSize: 5, maxWait: 10s, concurrency: 1')
  const env = { BREAKWATER_INSTANCE_ID: 'gw-term' }
  const gw = await startCli(t, file, { env })
  await groupCreated(redis)
  const pool = clientOf(t, gw, 5)
  const answers = await Promise.all([1, 2, 3, 4, 5].map(async (n) => await post(pool, JSON.stringify({ n }))))
  t.same(answers.map((answer) => answer.status), [202, 202, 202, 202, 202])
  const ids = answers.map((answer) => (JSON.parse(answer.body) as { id: string }).id)
  await waitUntil(() => held() >= 1, 'a batch at the upstream', 15_000)
  await waitUntil(async () => (await bulkStatus(pool)).inFlight === 5, 'all five taken by the sender', 15_000)
  await pool.close()

  const signalledAt = Date.now()
  gw.child.kill('SIGTERM')
  const exit = await withDeadline(gw.exit, 'the gateway to exit', shutdownTimeoutMs + 8_000)
  const elapsedMs = Date.now() - signalledAt
  // The sender gives up at shutdownTimeout; the batch still at the upstream is aborted, its items left in the stream.
  t.same(exit, { code: 0, signal: null }, 'exit code 0')
  t.ok(elapsedMs < shutdownTimeoutMs + 1_500, `exited within shutdownTimeout (${elapsedMs} ms for ${shutdownTimeoutMs} ms)`)
  t.ok(elapsedMs >= shutdownTimeoutMs - 100, `the held batch had its shutdownTimeout (${elapsedMs} ms)`)
  t.equal(await xlen(redis), 5, 'the undelivered items are still in the stream')
  t.equal(await xpending(redis), 5, 'still pending under gw-term')
  t.same(delivered, [])

  heal()
  await startCli(t, file, { env })
  await waitUntil(() => delivered.length >= 5, 'the items delivered after the restart', 10_000)
  t.same([...delivered].sort(), [...ids].sort())
  await waitUntil(async () => await xlen(redis) === 0, 'the stream emptied', 15_000)
})
