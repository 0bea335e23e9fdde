// Async bulk routes end to end: 202 with the item's id once queued (memory, Redis, Redis Cluster), batches with X-Bulk-Item-Ids, dead letters and redrive.
import { hostname } from 'node:os'
import { performance } from 'node:perf_hooks'
import pino from 'pino'
import t, { type Test } from 'tap'
import { request } from 'undici'
import type { BulkRouteStatus } from '../../src/bulk/index.js'
import { startGateway, type Gateway } from '../helpers/gateway.js'
import { parsePrometheus, valueOf } from '../helpers/prometheus.js'
import { startRedis, startRedisCluster, type RedisServer } from '../helpers/redis.js'
import { startUpstream, type Upstream, type UpstreamHandler } from '../helpers/upstream.js'
import { waitUntil } from '../helpers/wait.js'

const TOKEN = 'bulk-async-test-token'
const BULK_PATH = '/api/events/_bulk'
/** The route's stream and dead-letter stream under the default key prefix (`bw:`). */
const STREAM_KEY = 'bw:bulk:{events}:stream'
const DEAD_KEY = 'bw:bulk:{events}:dead'
/** An entry id as Redis makes them, which the memory queue imitates. */
const ENTRY_ID = /^\d+-\d+$/

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

async function post (gw: Gateway, body: string): Promise<Answer> {
  const res = await request(`${gw.url}/api/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

/** POSTs one item that must be accepted: 202 `{"id"}`; returns the id. */
async function accept (t: Test, gw: Gateway, body: string): Promise<string> {
  const answer = await post(gw, body)
  t.equal(answer.status, 202, `${body} accepted`)
  t.match(answer.headers['content-type'], /^application\/json/)
  const { id } = JSON.parse(answer.body) as { id: string }
  t.match(id, ENTRY_ID)
  return id
}

interface Batch {
  /** X-Bulk-Item-Ids, split. */
  ids: string[]
  items: unknown[]
}

const batchOf = (headers: Record<string, string | string[] | undefined>, body: Buffer): Batch => ({
  ids: String(headers['x-bulk-item-ids']).split(','),
  items: JSON.parse(body.toString('utf8')) as unknown[]
})

/** Every request the origin received at the bulk endpoint, answered or not. */
const batchesOf = (origin: Upstream): Batch[] => origin.received.filter((req) => req.url === BULK_PATH).map((req) => batchOf(req.headers, req.body))

/** A bulk endpoint answering each item `{"n": k}` with `{"status": 201, "n": k}`, or 409 for `{"dup": true}`. */
const bulkEndpoint: UpstreamHandler = (_req, res, body) => {
  const batch = JSON.parse(body.toString('utf8')) as Array<{ n?: number, dup?: boolean }>
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify(batch.map((item) => item.dup === true ? { status: 409, error: 'duplicate' } : { status: 201, n: item.n })))
}

/** Wraps `handler` to record the batches it answers: what the upstream took, as opposed to attempts it failed or held. */
function recording (handler: UpstreamHandler): { handler: UpstreamHandler, taken: Batch[] } {
  const taken: Batch[] = []
  return {
    taken,
    handler: (req, res, body) => {
      taken.push(batchOf(req.headers, body))
      handler(req, res, body)
    }
  }
}

async function bulkStatus (gw: Gateway): Promise<BulkRouteStatus> {
  const res = await request(`${gw.url}/actuator/bulk`)
  if (res.statusCode !== 200) throw new Error(`GET /actuator/bulk answered ${res.statusCode}: ${await res.body.text()}`)
  return ((await res.body.json()) as { routes: Record<string, BulkRouteStatus> }).routes.events as BulkRouteStatus
}

async function scrape (gw: Gateway): Promise<(name: string, labels: Record<string, string>) => number> {
  const exposition = parsePrometheus(await (await request(`${gw.url}/actuator/prometheus`)).body.text())
  return (name, labels) => valueOf(exposition, name, labels)
}

/** A gateway with one async bulk route `events` to `origin`; `redis` is the YAML of the `redis:` block, if any. */
async function asyncGateway (t: Test, origin: Upstream, bulk: string, options: { redis?: string, instanceId?: string } = {}): Promise<Gateway> {
  // A short shutdownTimeout bounds each teardown: close() waits for the senders at most this long.
  return await startGateway(t, `
server:
  shutdownTimeout: 2s
management:
  token: ${TOKEN}
${options.redis === undefined ? '' : `redis: ${options.redis}\n`}routes:
  - id: events
    prefix: /api/events
    upstream: ${origin.url}
    bulk: {path: ${BULK_PATH}, mode: async, ${bulk}}
`, { instanceId: options.instanceId })
}

/**
 * Waits until the gateway has created the route's consumer group: its Redis connection is up. It listens before it
 * is, and refuses items with 503 until then (a consumer shows in XINFO only once it was handed an entry).
 */
async function groupCreated (servers: readonly RedisServer[]): Promise<void> {
  await waitUntil(async () => {
    // In a Cluster only the node holding the key answers; the others answer MOVED.
    const answers = await Promise.all(servers.map(async (server) => await server.cli('xinfo', 'groups', STREAM_KEY).catch(() => '')))
    return answers.some((answer) => answer.split('\n').includes('breakwater'))
  }, 'the route\'s consumer group', 10_000, 20)
}

interface StoredDeadLetter {
  id: string
  body: string
  error: string
}

/** The dead-letter stream as redis-cli prints it: per entry its id, then four fields (id, body, error, failedAt) as name and value lines. */
async function deadLettersIn (redis: RedisServer): Promise<StoredDeadLetter[]> {
  const output = await redis.cli('xrange', DEAD_KEY, '-', '+')
  if (output === '') return []
  const lines = output.split('\n')
  const letters: StoredDeadLetter[] = []
  for (let i = 0; i + 9 <= lines.length; i += 9) {
    const fields = new Map<string, string>()
    for (let f = i + 1; f < i + 9; f += 2) fields.set(lines[f] as string, lines[f + 1] as string)
    letters.push({ id: fields.get('id') as string, body: fields.get('body') as string, error: fields.get('error') as string })
  }
  return letters
}

const xlen = async (redis: RedisServer): Promise<number> => Number(await redis.cli('xlen', STREAM_KEY))

t.test('in memory: 202 with an id per item; batches carry exactly those ids in order; not durable', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await asyncGateway(t, origin, 'batchSize: 3, maxWait: 5s')
  const ids: string[] = []
  // One at a time, so the queue's order is the posting order: full batches of 3 go without waiting for maxWait.
  for (let n = 1; n <= 6; n++) ids.push(await accept(t, gw, JSON.stringify({ n })))
  t.equal(new Set(ids).size, 6, 'every id is its own')

  await waitUntil(async () => (await bulkStatus(gw)).pending === 0 && batchesOf(origin).length === 2, 'both batches delivered and acknowledged')
  const batches = batchesOf(origin).sort((a, b) => (a.items[0] as { n: number }).n - (b.items[0] as { n: number }).n)
  t.same(batches.map((batch) => batch.items), [[{ n: 1 }, { n: 2 }, { n: 3 }], [{ n: 4 }, { n: 5 }, { n: 6 }]])
  t.same(batches.map((batch) => batch.ids), [ids.slice(0, 3), ids.slice(3)], 'X-Bulk-Item-Ids lists the 202s\' ids, in batch order')
  t.equal(origin.received[0]?.headers['x-bulk-size'], '3')

  t.same(await bulkStatus(gw), { mode: 'async', durable: false, pending: 0, inFlight: 0, deadLetters: 0, oldestItemAgeMs: 0 })
  const metric = await scrape(gw)
  t.equal(metric('bulk_items_total', { route: 'events', outcome: 'accepted' }), 6)
  t.equal(metric('bulk_items_total', { route: 'events', outcome: 'delivered' }), 6)
  t.equal(metric('bulk_items_total', { route: 'events', outcome: 'failed' }), 0)
  t.equal(metric('bulk_batches_total', { route: 'events', outcome: 'success' }), 2)
  t.equal(metric('bulk_batch_size_sum', { route: 'events' }), 6)
  t.equal(metric('bulk_pending_items', { route: 'events' }), 0)

  // Nothing is left to drain, so nothing should hold the shutdown.
  const closing = performance.now()
  await gw.app.close()
  const closeMs = performance.now() - closing
  t.ok(closeMs < 1000, `an idle in-memory route closes at once (${closeMs.toFixed(0)} ms; shutdownTimeout 2 s)`)
})

t.test('with Redis: 202 only once the item is in the stream; acknowledged and removed once the upstream took it', async (t) => {
  const redis = await startRedis(t)
  const held: Array<() => void> = []
  const origin = await startUpstream(t, (req, res, body) => { held.push(() => { bulkEndpoint(req, res, body) }) })
  const gw = await asyncGateway(t, origin, 'batchSize: 4, maxWait: 5s', { redis: `{url: '${redis.url}', commandTimeout: 1s}`, instanceId: 'gw-held' })
  await groupCreated([redis])

  const ids: string[] = []
  for (let n = 1; n <= 4; n++) {
    const id = await accept(t, gw, JSON.stringify({ n }))
    ids.push(id)
    // Read once the 202 is in: the entry is there already, under the id the client got.
    t.equal(await xlen(redis), n, `item ${n} is in the stream when its 202 arrives`)
    t.same((await redis.cli('xrange', STREAM_KEY, id, id)).split('\n'), [id, 'body', JSON.stringify({ n })])
  }
  await waitUntil(() => held.length === 1, 'the batch at the upstream')
  const waiting = await bulkStatus(gw)
  t.match(waiting, { mode: 'async', durable: true, pending: 0, inFlight: 4, deadLetters: 0 }, 'taken by this instance: in flight, not pending')
  t.ok(waiting.oldestItemAgeMs >= 0 && waiting.oldestItemAgeMs < 60_000, `the oldest item's age (${waiting.oldestItemAgeMs} ms)`)
  t.equal((await redis.cli('xpending', STREAM_KEY, 'breakwater')).split('\n')[0], '4', 'the four entries are pending in the consumer group')
  t.equal((await scrape(gw))('bulk_pending_items', { route: 'events' }), 4)

  held.shift()?.()
  await waitUntil(async () => await xlen(redis) === 0, 'the stream to be emptied by the acknowledgements')
  t.same(batchesOf(origin).map((batch) => batch.ids), [ids])
  t.same(await bulkStatus(gw), { mode: 'async', durable: true, pending: 0, inFlight: 0, deadLetters: 0, oldestItemAgeMs: 0 })
  t.equal((await redis.cli('xpending', STREAM_KEY, 'breakwater')).split('\n')[0], '0')
  const metric = await scrape(gw)
  t.equal(metric('bulk_items_total', { route: 'events', outcome: 'delivered' }), 4)
  t.equal(metric('bulk_pending_items', { route: 'events' }), 0)
})

t.test('upstream failing past its retries: dead letters with the error; redrive (token-protected) delivers them under their first ids', async (t) => {
  const redis = await startRedis(t)
  let healthy = false
  const answered = recording(bulkEndpoint)
  const origin = await startUpstream(t, (req, res, body) => {
    if (healthy) {
      answered.handler(req, res, body)
      return
    }
    res.writeHead(503, { 'content-type': 'text/plain' })
    res.end('down for maintenance')
  })
  // One batch of the three items, however slow the machine: a batch goes at its third item, never on maxWait. Two
  // batches would fail 6 times, and the route's breaker would open (failureThreshold 5) before the last attempt.
  const gw = await asyncGateway(t, origin, 'batchSize: 3, maxWait: 10s, retry: {retries: 2, backoff: 1ms, maxBackoff: 2ms}', {
    redis: `{url: '${redis.url}', commandTimeout: 1s}`, instanceId: 'gw-dead'
  })
  await groupCreated([redis])
  const ids = [await accept(t, gw, '{"n":1}'), await accept(t, gw, '{"n":2}'), await accept(t, gw, '{"n":3}')]

  await waitUntil(async () => {
    const status = await bulkStatus(gw)
    return status.deadLetters === 3 && status.pending === 0 && status.inFlight === 0
  }, 'the three items dead-lettered')
  const attempts = batchesOf(origin)
  const batchCount = new Set(origin.received.map((req) => req.headers['x-bulk-batch-id'])).size
  t.equal(attempts.length, batchCount * 3, 'each batch was tried three times (retries: 2)')
  const letters = await deadLettersIn(redis)
  t.same(letters.map((letter) => letter.id).sort(), [...ids].sort(), 'each dead letter keeps its item\'s id')
  for (const letter of letters) {
    t.match(letter.error, /^BW_ERR_UPSTREAM_BAD_RESPONSE: bulk batch \S+ failed after 3 attempts: \/api\/events\/_bulk answered 503$/)
    t.equal(letter.body, `{"n":${ids.indexOf(letter.id) + 1}}`)
  }
  t.equal(await xlen(redis), 0, 'dead letters left the stream')
  let metric = await scrape(gw)
  t.equal(metric('bulk_dead_letter_items', { route: 'events' }), 3)
  t.equal(metric('bulk_items_total', { route: 'events', outcome: 'failed' }), 3)
  t.equal(metric('bulk_items_total', { route: 'events', outcome: 'delivered' }), 0)
  t.equal(metric('bulk_batches_total', { route: 'events', outcome: 'failed' }), batchCount)
  t.equal(metric('bulk_batches_total', { route: 'events', outcome: 'retry' }), 2 * batchCount)

  const redrive = async (token?: string): Promise<Answer> => {
    const res = await request(`${gw.url}/actuator/bulk/events/redrive`, { method: 'POST', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
  }
  const anonymous = await redrive()
  t.equal(anonymous.status, 401)
  t.match(JSON.parse(anonymous.body), { code: 'BW_ERR_ACTUATOR_UNAUTHORIZED' })
  t.equal((await redrive('not-the-token')).status, 401)
  t.equal((await bulkStatus(gw)).deadLetters, 3, 'a refused redrive moved nothing')

  healthy = true
  const moved = await redrive(TOKEN)
  t.equal(moved.status, 200)
  t.same(JSON.parse(moved.body), { route: 'events', redriven: 3 })
  await waitUntil(async () => {
    const status = await bulkStatus(gw)
    return answered.taken.flatMap((batch) => batch.ids).length === 3 && status.pending === 0 && status.deadLetters === 0
  }, 'the redriven items delivered')
  const delivered = answered.taken.flatMap((batch) => batch.ids)
  t.same([...delivered].sort(), [...ids].sort(), 'delivered under the ids their clients got, not their new entry ids')
  t.same(answered.taken.flatMap((batch) => batch.items).map((item) => (item as { n: number }).n), delivered.map((id) => ids.indexOf(id) + 1), 'each id with its own body')
  t.same(await deadLettersIn(redis), [])
  metric = await scrape(gw)
  t.equal(metric('bulk_dead_letter_items', { route: 'events' }), 0)
  t.equal(metric('bulk_items_total', { route: 'events', outcome: 'delivered' }), 3)
})

t.test('Redis down: 503 BW_ERR_BULK_QUEUE_UNAVAILABLE with Retry-After at once; accepted again once Redis is back', async (t) => {
  const redis = await startRedis(t)
  const answered = recording(bulkEndpoint)
  const origin = await startUpstream(t, answered.handler)
  const gw = await asyncGateway(t, origin, 'batchSize: 10, maxWait: 1ms', { redis: `{url: '${redis.url}', commandTimeout: 250ms}`, instanceId: 'gw-outage' })
  await groupCreated([redis])
  const before = await accept(t, gw, '{"n":1}')
  await waitUntil(() => answered.taken.length === 1, 'the first item delivered')

  await redis.kill()
  for (let n = 2; n <= 4; n++) {
    const started = performance.now()
    const refused = await post(gw, JSON.stringify({ n }))
    const elapsedMs = performance.now() - started
    t.equal(refused.status, 503)
    t.ok(elapsedMs < 500, `refused at once (${elapsedMs.toFixed(0)} ms)`)
    t.equal(refused.headers['retry-after'], '1')
    t.match(refused.headers['content-type'], /^application\/problem\+json/)
    t.match(JSON.parse(refused.body), { code: 'BW_ERR_BULK_QUEUE_UNAVAILABLE', status: 503, route: 'events' })
  }
  t.equal((await scrape(gw))('bulk_items_total', { route: 'events', outcome: 'rejected' }), 3)
  t.match(await bulkStatus(gw), { mode: 'async', durable: true, deadLetters: 0 }, 'the actuator still answers, with the last figures read')

  await redis.restart()
  let after = ''
  await waitUntil(async () => {
    const answer = await post(gw, '{"n":5}')
    if (answer.status === 202) after = (JSON.parse(answer.body) as { id: string }).id
    else t.match(JSON.parse(answer.body), { code: 'BW_ERR_BULK_QUEUE_UNAVAILABLE' }, 'refused while the connection comes back')
    return answer.status === 202
  }, 'an item accepted after the restart', 10_000, 50)
  await waitUntil(() => answered.taken.length === 2, 'the item after the restart delivered', 10_000)
  t.same(answered.taken.map((batch) => batch.ids), [[before], [after]])
  t.same(answered.taken[1]?.items, [{ n: 5 }])
})

t.test('over a 3-master Redis Cluster: every item accepted and delivered', async (t) => {
  const cluster = await startRedisCluster(t)
  const answered = recording(bulkEndpoint)
  const origin = await startUpstream(t, answered.handler)
  const gw = await asyncGateway(t, origin, 'batchSize: 25, maxWait: 10ms', {
    redis: `{cluster: [${cluster.nodes.map((node) => `'${node}'`).join(', ')}], commandTimeout: 1s}`, instanceId: 'gw-cluster'
  })
  await groupCreated(cluster.servers)
  const total = 100
  const answers = await Promise.all(Array.from({ length: total }, async (_, n) => await post(gw, JSON.stringify({ n }))))
  t.same(answers.map((answer) => answer.status), new Array<number>(total).fill(202))
  const ids = answers.map((answer) => (JSON.parse(answer.body) as { id: string }).id)
  t.equal(new Set(ids).size, total)

  await waitUntil(async () => answered.taken.flatMap((batch) => batch.ids).length >= total && (await bulkStatus(gw)).pending === 0, 'every item delivered', 10_000)
  const delivered = answered.taken.flatMap((batch) => batch.ids)
  t.same([...delivered].sort(), [...ids].sort(), 'each accepted id delivered once')
  const bodies = new Map(answered.taken.flatMap((batch) => batch.ids.map((id, i) => [id, batch.items[i]] as const)))
  t.ok(ids.every((id, n) => (bodies.get(id) as { n: number }).n === n), 'each id with its own item')
  t.ok(answered.taken.every((batch) => batch.ids.length <= 25), 'no batch over batchSize')
  t.match(await bulkStatus(gw), { mode: 'async', durable: true, pending: 0, deadLetters: 0 })
})

t.test('a per-item error in a 2xx answer dead-letters that item only', async (t) => {
  const redis = await startRedis(t)
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await asyncGateway(t, origin, 'batchSize: 3, maxWait: 5s', { redis: `{url: '${redis.url}', commandTimeout: 1s}`, instanceId: 'gw-409' })
  await groupCreated([redis])
  const ids = [await accept(t, gw, '{"n":1}'), await accept(t, gw, '{"dup": true}'), await accept(t, gw, '{"n":3}')]

  await waitUntil(async () => {
    const status = await bulkStatus(gw)
    return status.pending === 0 && status.deadLetters === 1
  }, 'the batch settled')
  t.same(batchesOf(origin).map((batch) => batch.ids), [ids], 'one batch, sent once: a per-item error is not retried')
  t.same(await deadLettersIn(redis), [{ id: ids[1], body: '{"dup": true}', error: 'upstream answered 409: {"status":409,"error":"duplicate"}' }])
  const metric = await scrape(gw)
  t.equal(metric('bulk_items_total', { route: 'events', outcome: 'delivered' }), 2)
  t.equal(metric('bulk_items_total', { route: 'events', outcome: 'failed' }), 1)
  t.equal(metric('bulk_batches_total', { route: 'events', outcome: 'success' }), 1)
  t.equal(metric('bulk_dead_letter_items', { route: 'events' }), 1)
})

t.test('maxPending: past it, 503 BW_ERR_BULK_QUEUE_FULL with Retry-After; accepted again once the queue drained', async (t) => {
  const redis = await startRedis(t)
  const held: Array<() => void> = []
  const origin = await startUpstream(t, (req, res, body) => { held.push(() => { bulkEndpoint(req, res, body) }) })
  const gw = await asyncGateway(t, origin, 'batchSize: 2, maxPending: 2, maxWait: 5s', { redis: `{url: '${redis.url}', commandTimeout: 1s}`, instanceId: 'gw-full' })
  await groupCreated([redis])
  const ids = [await accept(t, gw, '{"n":1}'), await accept(t, gw, '{"n":2}')]

  const refused = await post(gw, '{"n":3}')
  t.equal(refused.status, 503)
  t.equal(refused.headers['retry-after'], '1')
  t.match(JSON.parse(refused.body), { code: 'BW_ERR_BULK_QUEUE_FULL', route: 'events', detail: /maxPending/ })
  t.equal(await xlen(redis), 2, 'the refused item was not stored')

  await waitUntil(() => held.length === 1, 'the batch at the upstream')
  origin.handle(bulkEndpoint)
  held.shift()?.()
  await waitUntil(async () => await xlen(redis) === 0, 'the batch acknowledged')
  // A look at the queue (the actuator's, or the next refusal's) refreshes the count the route checks.
  t.equal((await bulkStatus(gw)).pending, 0)
  ids.push(await accept(t, gw, '{"n":4}'))
  t.same(batchesOf(origin)[0]?.ids, ids.slice(0, 2))
  t.equal((await scrape(gw))('bulk_items_total', { route: 'events', outcome: 'rejected' }), 1)
})

t.test('the consumer is named by BREAKWATER_INSTANCE_ID, else by the host name', async (t) => {
  const redis = await startRedis(t)
  const answered = recording(bulkEndpoint)
  const origin = await startUpstream(t, answered.handler)
  const saved = process.env.BREAKWATER_INSTANCE_ID
  t.teardown(() => {
    if (saved === undefined) delete process.env.BREAKWATER_INSTANCE_ID
    else process.env.BREAKWATER_INSTANCE_ID = saved
  })
  const cases: Array<[string | undefined, string]> = [['pod-7', 'pod-7'], ['', hostname()], [undefined, hostname()]]
  for (const [n, [value, consumer]] of cases.entries()) {
    if (value === undefined) delete process.env.BREAKWATER_INSTANCE_ID
    else process.env.BREAKWATER_INSTANCE_ID = value
    // No instanceId option: buildServer reads the environment. maxWait 0ms sends each item alone, at once.
    const gw = await asyncGateway(t, origin, 'maxWait: 0ms', { redis: `{url: '${redis.url}', commandTimeout: 1s}` })
    await groupCreated([redis])
    const id = await accept(t, gw, JSON.stringify({ n }))
    await waitUntil(() => answered.taken.some((batch) => batch.ids.includes(id)), 'the item delivered')
    const info = (await redis.cli('xinfo', 'consumers', STREAM_KEY, 'breakwater')).split('\n')
    const names = info.filter((_line, i) => info[i - 1] === 'name')
    t.same(names, [consumer], `BREAKWATER_INSTANCE_ID=${JSON.stringify(value)}: read as ${consumer}`)
    await gw.app.close()
    await redis.cli('xgroup', 'delconsumer', STREAM_KEY, 'breakwater', consumer)
  }
})

t.test('a queue that fails while Redis is away: the sender warns once per 30 s and goes on, delivering once Redis is back', async (t) => {
  const redis = await startRedis(t)
  const origin = await startUpstream(t, (_req, res) => { res.writeHead(204); res.end() })
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  const { url } = await startGateway(t, `
redis: {url: '${redis.url}', commandTimeout: 1s}
routes:
  - id: events
    prefix: /api/events
    upstream: ${origin.url}
    bulk: {path: ${BULK_PATH}, mode: async, batchSize: 10, maxWait: 5ms}
`, { logger, instanceId: 'gw-warn' })
  const warnings = (): unknown[] => lines.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('bulk queue of route events failed'))

  await redis.kill()
  await waitUntil(() => warnings().length === 1, 'the sender\'s warning', 5_000)
  // The sender keeps trying (every second at most) while Redis is away; none of those tries is logged again.
  await waitUntil(() => lines.length > 0 && Date.now() - (lines.at(-1)?.time as number) > 1_500, 'a quiet second and a half', 10_000, 100)
  t.equal(warnings().length, 1, 'one warning for every failed take')

  await redis.restart()
  let id = ''
  // 503 until the client has reconnected (its backoff is at most a second): the item is not queued until a 202.
  await waitUntil(async () => {
    const res = await request(`${url}/api/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' })
    if (res.statusCode === 202) id = (await res.body.json() as { id: string }).id
    else await res.body.dump()
    return id !== ''
  }, 'a 202 once Redis is back', 10_000, 100)
  await waitUntil(() => origin.received.some((req) => req.headers['x-bulk-item-ids'] === id), 'the item delivered after Redis came back', 10_000)
})

t.test('a write injected past the front door (light-my-request) is served the same way', async (t) => {
  const origin = await startUpstream(t, (_req, res) => { res.writeHead(204); res.end() })
  const gw = await startGateway(t, `
routes:
  - id: events
    prefix: /api/events
    upstream: ${origin.url}
    bulk: {path: ${BULK_PATH}, maxWait: 1ms}
`)
  const injected = await gw.app.inject({ method: 'POST', url: '/api/events', headers: { 'content-type': 'application/json' }, payload: '{"n":1}' })
  t.equal(injected.statusCode, 200)
  t.match(injected.json(), { batch: String, index: 0 })
  t.equal(origin.received[0]?.body.toString(), '[{"n":1}]')
  const refused = await gw.app.inject({ method: 'POST', url: '/api/events', headers: { 'content-type': 'text/plain' }, payload: 'x' })
  t.equal(refused.statusCode, 415)
  t.equal(refused.headers['content-type'], 'application/problem+json; charset=utf-8')
})
