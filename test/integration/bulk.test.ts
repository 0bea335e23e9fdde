// Bulk routes end to end in sync mode: single POSTs through a real gateway, gathered into batches at a real bulk endpoint.
import { once } from 'node:events'
import { connect } from 'node:net'
import t, { type Test } from 'tap'
import { Pool, request } from 'undici'
import { startGateway, type Gateway } from '../helpers/gateway.js'
import { parsePrometheus, valueOf } from '../helpers/prometheus.js'
import { startUpstream, type Upstream, type UpstreamHandler } from '../helpers/upstream.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

const TOKEN = 'bulk-test-token'

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** POSTs `body` to the gateway's `path` as one item. */
async function post (gw: Gateway, body: string, contentType: string | null = 'application/json', path = '/api/events'): Promise<Answer> {
  const res = await request(`${gw.url}${path}`, {
    method: 'POST',
    headers: contentType === null ? {} : { 'content-type': contentType },
    body
  })
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

/** The batches the origin received at its bulk endpoint, parsed. */
const batchesOf = (origin: Upstream): unknown[][] => origin.received
  .filter((req) => req.url === '/api/events/_bulk')
  .map((req) => JSON.parse(req.body.toString('utf8')) as unknown[])

/** The gateway's metrics now, read by name and labels. */
async function scrape (url: string): Promise<{ value: (name: string, labels: Record<string, string>) => number }> {
  const exposition = parsePrometheus(await (await request(`${url}/actuator/prometheus`)).body.text())
  return { value: (name, labels) => valueOf(exposition, name, labels) }
}

/** A bulk endpoint answering each item `{"n": k}` with `{"status": 201, "n": k}`, or 409 for `{"dup": true}`. */
const bulkEndpoint: UpstreamHandler = (_req, res, body) => {
  const batch = JSON.parse(body.toString('utf8')) as Array<{ n?: number, dup?: boolean }>
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify(batch.map((item) => item.dup === true ? { status: 409, error: 'duplicate' } : { status: 201, n: item.n })))
}

/** A gateway with one bulk route `events` to `origin`, and `bulk` keys besides its path. */
async function bulkGateway (t: Test, origin: Upstream, bulk: string, route = ''): Promise<Gateway> {
  return await startGateway(t, `
management:
  token: ${TOKEN}
routes:
  - id: events
    prefix: /api/events
    upstream: ${origin.url}
${route}    bulk: {path: /api/events/_bulk, ${bulk}}
`)
}

t.test('5,000 concurrent single POSTs: each arrives once, in a handful of batches, and each client gets its own element', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await bulkGateway(t, origin, 'batchSize: 1000, maxWait: 500ms')
  const clients = new Pool(gw.url, { connections: 1000 })
  t.teardown(() => clients.close())
  const total = 5000
  const answers = await withDeadline(Promise.all(Array.from({ length: total }, async (_, n) => {
    const res = await clients.request({ method: 'POST', path: '/api/events', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }) })
    return { status: res.statusCode, body: await res.body.json() as { n: number } }
  })), '5,000 answers', 60_000)

  t.equal(answers.filter((answer, n) => answer.status === 201 && answer.body.n === n).length, total, 'every client got 201 and its own element')
  const batches = batchesOf(origin)
  const arrived = batches.flat().map((item) => (item as { n: number }).n).sort((a, b) => a - b)
  t.same(arrived, Array.from({ length: total }, (_, n) => n), 'every item arrived exactly once')
  t.ok(batches.length >= 5 && batches.length <= 12, `a handful of batches (${batches.length}), none over batchSize`)
  t.ok(batches.every((batch) => batch.length <= 1000))
  const metrics = await scrape(gw.url)
  t.equal(metrics.value('bulk_items_total', { route: 'events', outcome: 'accepted' }), total)
  t.equal(metrics.value('bulk_items_total', { route: 'events', outcome: 'delivered' }), total)
  t.equal(metrics.value('bulk_batches_total', { route: 'events', outcome: 'success' }), batches.length)
  t.equal(metrics.value('bulk_batch_size_count', { route: 'events' }), batches.length)
  t.equal(metrics.value('bulk_batch_size_sum', { route: 'events' }), total)
  t.equal(metrics.value('bulk_flush_duration_seconds_count', { route: 'events' }), batches.length)
  t.equal(metrics.value('bulk_pending_items', { route: 'events' }), 0)
})

t.test('a lone item goes after maxWait, with the batch headers', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await bulkGateway(t, origin, 'maxWait: 150ms')
  const started = performance.now()
  const answer = await post(gw, ' {"n": 7}\n')
  const elapsedMs = performance.now() - started
  t.equal(answer.status, 201)
  t.same(JSON.parse(answer.body), { status: 201, n: 7 })
  t.match(answer.headers['content-type'], /^application\/json/)
  t.ok(elapsedMs >= 145, `waited for maxWait (${elapsedMs.toFixed(0)} ms)`)
  t.equal(origin.received.length, 1)
  const batch = origin.received[0]
  t.equal(batch?.body.toString('utf8'), '[{"n": 7}]', 'the item is sent as the client wrote it, without surrounding whitespace')
  t.match(batch?.headers, { 'x-bulk-size': '1', 'content-type': 'application/json', 'x-bulk-batch-id': /^[0-9a-f-]{36}$/ })
})

t.test('per-item statuses: each client gets its element with its status; a 2xx without per-item answers acknowledges each', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await bulkGateway(t, origin, 'batchSize: 3, maxWait: 5s')
  const answers = await Promise.all([post(gw, '{"n":1}'), post(gw, '{"dup":true}'), post(gw, '{"n":3}')])
  t.same(answers.map((answer) => answer.status).sort(), [201, 201, 409])
  const conflict = answers.find((answer) => answer.status === 409)
  t.same(JSON.parse(conflict?.body ?? ''), { status: 409, error: 'duplicate' })

  origin.handle((_req, res) => { res.writeHead(202); res.end() })
  const acknowledged = await Promise.all([post(gw, '1'), post(gw, '2'), post(gw, '3')])
  t.same(acknowledged.map((answer) => answer.status), [200, 200, 200])
  const batchId = origin.received[1]?.headers['x-bulk-batch-id']
  t.same(acknowledged.map((answer) => JSON.parse(answer.body).batch), [batchId, batchId, batchId])
  t.same(acknowledged.map((answer) => JSON.parse(answer.body).index).sort(), [0, 1, 2])
  const metrics = await scrape(gw.url)
  t.equal(metrics.value('bulk_items_total', { route: 'events', outcome: 'failed' }), 1, 'the 409 item failed')
  t.equal(metrics.value('bulk_items_total', { route: 'events', outcome: 'delivered' }), 5)
})

t.test('ndjson: one item per line upstream; an item with a line break is refused', async (t) => {
  const origin = await startUpstream(t, (_req, res) => { res.writeHead(204); res.end() })
  const gw = await bulkGateway(t, origin, 'format: ndjson, batchSize: 2, maxWait: 5s')
  const answers = await Promise.all([post(gw, '{"a":1}'), post(gw, '{"b":"x\\ny"}')])
  t.same(answers.map((answer) => answer.status), [200, 200])
  t.equal(origin.received[0]?.body.toString('utf8'), '{"a":1}\n{"b":"x\\ny"}\n')
  t.equal(origin.received[0]?.headers['content-type'], 'application/x-ndjson')

  const multiLine = await post(gw, '{\n"a": 1\n}')
  t.equal(multiLine.status, 400)
  t.match(JSON.parse(multiLine.body), { code: 'BW_ERR_BULK_INVALID_ITEM', detail: /on one line/ })
  t.equal(origin.received.length, 1, 'the refused item was never sent')
})

t.test('invalid JSON, wrong media types and oversized bodies are refused with problem+json and never sent', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await bulkGateway(t, origin, 'maxWait: 1ms', '    bodyLimit: 100b\n')
  const cases: Array<[string, string | null, number, string]> = [
    ['{"n":', 'application/json', 400, 'BW_ERR_BULK_INVALID_ITEM'],
    ['   ', 'application/json', 400, 'BW_ERR_BULK_INVALID_ITEM'],
    ['{"n":1}', 'text/plain', 415, 'BW_ERR_BULK_UNSUPPORTED_MEDIA_TYPE'],
    ['{"n":1}', null, 415, 'BW_ERR_BULK_UNSUPPORTED_MEDIA_TYPE'],
    ['{"n":1}', 'application/json; charset=latin1', 415, 'BW_ERR_BULK_UNSUPPORTED_MEDIA_TYPE'],
    [`{"n":"${'x'.repeat(200)}"}`, 'application/json', 413, 'BW_ERR_REQUEST_BODY_TOO_LARGE']
  ]
  for (const [body, type, status, code] of cases) {
    const answer = await post(gw, body, type)
    t.equal(answer.status, status, `${type ?? 'no type'} ${body.slice(0, 10)}`)
    t.match(answer.headers['content-type'], /^application\/problem\+json/)
    t.match(JSON.parse(answer.body), { code, route: 'events' })
  }
  const gzipped = await request(`${gw.url}/api/events`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: '{}' })
  t.equal(gzipped.statusCode, 415)
  await gzipped.body.dump()
  t.same(origin.received, [], 'nothing reached the upstream')

  const accepted = await post(gw, '{"n":1}', 'application/vnd.acme.event+json; charset=UTF-8')
  t.equal(accepted.status, 201, 'a +json media type in UTF-8 is JSON')
  const metrics = await scrape(gw.url)
  t.equal(metrics.value('bulk_items_total', { route: 'events', outcome: 'rejected' }), cases.length + 1)
  t.equal(metrics.value('bulk_items_total', { route: 'events', outcome: 'accepted' }), 1)
})

t.test('a client that goes away mid-body: nothing is queued', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await bulkGateway(t, origin, 'maxWait: 1ms')
  const arrived = once(gw.app.server, 'request')
  const socket = connect(gw.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"n":')
  await withDeadline(arrived, 'the request head at the gateway')
  socket.destroy()
  await waitUntil(async () => (await scrape(gw.url)).value('bulk_items_total', { route: 'events', outcome: 'rejected' }) === 1, 'the item to be refused')
  t.equal((await scrape(gw.url)).value('bulk_items_total', { route: 'events', outcome: 'accepted' }), 0)
  t.same(origin.received, [])
})

t.test('other methods on a bulk route are proxied as they are', async (t) => {
  const origin = await startUpstream(t)
  const gw = await bulkGateway(t, origin, 'maxWait: 1ms')
  const res = await request(`${gw.url}/api/events/42`)
  t.equal(res.statusCode, 200)
  t.match(await res.body.json(), { method: 'GET', url: '/api/events/42' })
})

t.test('upstream down, then back: retried under one batch id, nothing lost, nothing duplicated', async (t) => {
  let failures = 0
  const origin = await startUpstream(t, (req, res, body) => {
    if (failures < 3) {
      failures++
      // A 503 twice, then a dropped connection: each a failed attempt.
      if (failures === 3) {
        req.socket.destroy()
        return
      }
      res.writeHead(503)
      res.end()
      return
    }
    bulkEndpoint(req, res, body)
  })
  const gw = await bulkGateway(t, origin, 'batchSize: 4, maxWait: 5s, retry: {retries: 5, backoff: 1ms, maxBackoff: 5ms}')
  const answers = await Promise.all([1, 2, 3, 4].map(async (n) => await post(gw, JSON.stringify({ n }))))
  t.same(answers.map((answer) => answer.status), [201, 201, 201, 201])
  t.same(answers.map((answer) => JSON.parse(answer.body).n), [1, 2, 3, 4], 'each client got its own element')
  t.equal(origin.received.length, 4, 'three failed attempts and one success')
  t.equal(new Set(origin.received.map((req) => req.headers['x-bulk-batch-id'])).size, 1, 'every attempt carried the same batch id')
  const metrics = await scrape(gw.url)
  t.equal(metrics.value('bulk_batches_total', { route: 'events', outcome: 'retry' }), 3)
  t.equal(metrics.value('bulk_batches_total', { route: 'events', outcome: 'success' }), 1)
  t.equal(metrics.value('bulk_items_total', { route: 'events', outcome: 'delivered' }), 4)
})

t.test('an open breaker during a batch: the items get 503 after the retries, and go again once it closes', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await bulkGateway(t, origin, 'maxWait: 1ms, retry: {retries: 2, backoff: 1ms, maxBackoff: 2ms}')
  const force = async (updateState: string): Promise<void> => {
    const res = await request(`${gw.url}/actuator/circuitbreakers/events`, {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ updateState })
    })
    t.equal(res.statusCode, 200)
    await res.body.dump()
  }
  await force('FORCE_OPEN')
  const refused = await post(gw, '{"n":1}')
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.body), { code: 'BW_ERR_UPSTREAM_CIRCUIT_OPEN', detail: /^bulk batch \S+ failed after 3 attempts/ })
  t.equal(origin.received.length, 0, 'the open breaker kept every attempt from the upstream')

  await force('CLOSE')
  t.equal((await post(gw, '{"n":2}')).status, 201)
  const metrics = await scrape(gw.url)
  t.equal(metrics.value('bulk_batches_total', { route: 'events', outcome: 'failed' }), 1)
  t.equal(metrics.value('bulk_items_total', { route: 'events', outcome: 'failed' }), 1)
})

t.test('maxPending: past it, 503 with Retry-After; the accepted items are all answered', async (t) => {
  const held: Array<() => void> = []
  const origin = await startUpstream(t, (req, res, body) => { held.push(() => { bulkEndpoint(req, res, body) }) })
  const gw = await bulkGateway(t, origin, 'batchSize: 2, maxPending: 2, maxWait: 5s, concurrency: 1')
  const accepted = [post(gw, '{"n":1}'), post(gw, '{"n":2}')]
  await waitUntil(() => held.length === 1, 'the batch at the upstream')

  const status = await request(`${gw.url}/actuator/bulk`)
  t.same(await status.body.json(), { routes: { events: { mode: 'sync', durable: false, pending: 0, inFlight: 2, deadLetters: 0, oldestItemAgeMs: 0 } } })
  t.equal((await scrape(gw.url)).value('bulk_pending_items', { route: 'events' }), 2)

  const refused = await post(gw, '{"n":3}')
  t.equal(refused.status, 503)
  t.match(refused.headers['retry-after'], /^[1-9]\d*$/)
  t.match(JSON.parse(refused.body), { code: 'BW_ERR_BULK_QUEUE_FULL', route: 'events' })

  held.shift()?.()
  t.same((await Promise.all(accepted)).map((answer) => answer.status), [201, 201])
  t.equal(batchesOf(origin).flat().length, 2, 'the refused item never reached the upstream')
})

t.test('shutdown sends the waiting batch at once and answers its clients before the gateway closes', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await bulkGateway(t, origin, 'batchSize: 1000, maxWait: 60s')
  const waiting = [post(gw, '{"n":1}'), post(gw, '{"n":2}')]
  await waitUntil(async () => {
    const res = await request(`${gw.url}/actuator/bulk`)
    return ((await res.body.json()) as { routes: { events: { pending: number } } }).routes.events.pending === 2
  }, 'two items waiting')
  await withDeadline(gw.app.close(), 'the gateway to close', 5_000)
  t.same((await Promise.all(waiting)).map((answer) => answer.status), [201, 201])
  t.equal(batchesOf(origin).flat().length, 2)
})

t.test('the actuator: bulk routes only; redrive is token-protected and has nothing to do in sync mode', async (t) => {
  const origin = await startUpstream(t, bulkEndpoint)
  const gw = await bulkGateway(t, origin, 'maxWait: 1ms')
  const redrive = async (route: string, token?: string): Promise<Answer> => {
    const res = await request(`${gw.url}/actuator/bulk/${route}/redrive`, { method: 'POST', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
  }
  t.equal((await redrive('events')).status, 401)
  const done = await redrive('events', TOKEN)
  t.equal(done.status, 200)
  t.same(JSON.parse(done.body), { route: 'events', redriven: 0 })
  const unknown = await redrive('nope', TOKEN)
  t.equal(unknown.status, 404)
  t.match(JSON.parse(unknown.body), { code: 'BW_ERR_ACTUATOR_NOT_FOUND' })
})
