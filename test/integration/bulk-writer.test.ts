// The bulk writer over a real RouteForwarder and breaker to a real origin: one POST per batch, counted by the breaker.
import t, { type Test } from 'tap'
import { BulkWriter, type BulkItemResult, type BulkWriterOptions } from '../../src/bulk/index.js'
import { parseConfig, type RouteConfig } from '../../src/config/index.js'
import { RouteForwarder } from '../../src/proxy/index.js'
import { BreakerRegistry, type CircuitBreaker } from '../../src/resilience/index.js'
import { startUpstream, type Upstream, type UpstreamHandler } from '../helpers/upstream.js'

interface Rig {
  origin: Upstream
  forwarder: RouteForwarder
  breaker: CircuitBreaker
  writer: BulkWriter
}

/** A route `events` to a real origin running `handler`, its breaker, its forwarder, and a writer sending through it. */
async function rig (t: Test, handler: UpstreamHandler, routeYaml: string, options: Partial<BulkWriterOptions> = {}): Promise<Rig> {
  const origin = await startUpstream(t, handler)
  const config = parseConfig(`
routes:
  - id: events
    prefix: /api/events
    methods: [POST]
    upstream: ${origin.url}
${routeYaml}
`, 'test.yaml', {})
  const route = config.routes[0] as RouteConfig
  const breaker = new BreakerRegistry(config.routes).get('events') as CircuitBreaker
  const forwarder = new RouteForwarder(route, { trustProxy: false, sendTimeoutMs: 60_000, guard: breaker })
  t.teardown(() => forwarder.close())
  const writer = new BulkWriter({
    path: '/api/events/_bulk?refresh=false',
    format: 'json-array',
    send: async (request) => await forwarder.send(request),
    retry: { retries: 0, delayMs: () => 0 },
    sleep: async () => {},
    newBatchId: () => 'batch-1',
    ...options
  })
  return { origin, forwarder, breaker, writer }
}

const items = (...values: unknown[]): Buffer[] => values.map((value) => Buffer.from(JSON.stringify(value)))

/** Each result as `status body`, or an Error as `code statusCode`. */
const show = (results: ReadonlyArray<BulkItemResult | Error>): string[] => results.map((result) => {
  if (result instanceof Error) {
    const { code, statusCode } = result as Error & { code?: string, statusCode?: number }
    return `${String(code)} ${String(statusCode)}`
  }
  return `${result.status} ${result.body.toString('utf8')}`
})

/** A bulk endpoint that answers each item with its index and a 201, or a 409 for an item `{"dup":true}`. */
const bulkEndpoint: UpstreamHandler = (_req, res, body) => {
  const batch = JSON.parse(body.toString('utf8')) as Array<{ dup?: boolean }>
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify(batch.map((item, index) => item.dup === true ? { status: 409, index } : { status: 201, index })))
}

t.test('one batch is one POST with the body and bulk headers, and each item gets its own element', async (t) => {
  const { origin, breaker, writer } = await rig(t, bulkEndpoint, '    headers: {x-tenant: acme}')
  const results = await writer.dispatch(items({ n: 1 }, { dup: true }, { n: 3 }))
  t.same(show(results), ['201 {"status":201,"index":0}', '409 {"status":409,"index":1}', '201 {"status":201,"index":2}'])

  t.equal(origin.received.length, 1, 'one upstream request for the batch')
  const request = origin.received[0]
  t.equal(request?.method, 'POST')
  t.equal(request?.url, '/api/events/_bulk?refresh=false')
  t.equal(request?.body.toString('utf8'), '[{"n":1},{"dup":true},{"n":3}]')
  t.match(request?.headers, {
    'content-type': 'application/json',
    'content-length': '30',
    'x-bulk-batch-id': 'batch-1',
    'x-bulk-size': '3',
    'x-tenant': 'acme',
    host: new URL(origin.url).host
  })
  t.notOk('x-forwarded-for' in (request?.headers ?? {}), 'no client is behind a batch')
  t.match(breaker.snapshot(), { state: 'CLOSED', failedCalls: 0 }, 'a 2xx with per-item errors is a success')
})

t.test('ndjson through the forwarder', async (t) => {
  const { origin, writer } = await rig(t, (_req, res) => { res.writeHead(202); res.end() }, '', { format: 'ndjson' })
  const results = await writer.dispatch(items({ a: 1 }, { b: 2 }))
  t.same(show(results), ['200 {"batch":"batch-1","index":0}', '200 {"batch":"batch-1","index":1}'])
  t.equal(origin.received[0]?.body.toString('utf8'), '{"a":1}\n{"b":2}\n')
  t.equal(origin.received[0]?.headers['content-type'], 'application/x-ndjson')
})

t.test('the breaker counts a 5xx: opened by it, the retry is refused and the items get 503', async (t) => {
  const { origin, breaker, writer } = await rig(t, (_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' })
    res.end('down')
  }, '    breaker: {failureThreshold: 1, recoveryTimeout: 30s}', { retry: { retries: 2, delayMs: () => 0 } })
  const results = await writer.dispatch(items(1, 2))
  t.same(show(results), ['BW_ERR_UPSTREAM_CIRCUIT_OPEN 503', 'BW_ERR_UPSTREAM_CIRCUIT_OPEN 503'])
  t.equal(origin.received.length, 1, 'the open breaker kept the retries from the upstream')
  t.match(breaker.snapshot(), { state: 'OPEN', failedCalls: 1 })
  t.match((results[0] as Error).message, /^bulk batch batch-1 failed after 3 attempts: the circuit breaker of route events is open; retry in (29|30) s$/)
})

t.test('a 5xx then a success: retried under the same batch id', async (t) => {
  let calls = 0
  const { origin, breaker, writer } = await rig(t, (req, res, body) => {
    if (++calls === 1) {
      res.writeHead(503)
      res.end()
      return
    }
    bulkEndpoint(req, res, body)
  }, '', { retry: { retries: 1, delayMs: () => 0 } })
  t.same(show(await writer.dispatch(items({ n: 1 }))), ['201 {"status":201,"index":0}'])
  t.same(origin.received.map((request) => request.headers['x-bulk-batch-id']), ['batch-1', 'batch-1'])
  t.match(breaker.snapshot(), { failedCalls: 1, state: 'CLOSED' })
})

t.test('the route timeout bounds the request: 504, counted as a failure', async (t) => {
  const { breaker, writer } = await rig(t, (_req, res) => {
    const timer = setTimeout(() => { res.end('[1]') }, 2_000)
    res.on('close', () => { clearTimeout(timer) })
  }, '    timeout: 50ms')
  t.same(show(await writer.dispatch(items(1))), ['BW_ERR_UPSTREAM_TIMEOUT 504'])
  t.match(breaker.snapshot(), { failedCalls: 1 })
})

t.test('an unreachable upstream: 502 after the retries', async (t) => {
  const { origin, breaker, writer } = await rig(t, bulkEndpoint, '', { retry: { retries: 1, delayMs: () => 0 } })
  await origin.close()
  t.same(show(await writer.dispatch(items(1))), ['BW_ERR_UPSTREAM_UNREACHABLE 502'])
  t.match(breaker.snapshot(), { failedCalls: 2 })
})

t.test('an answer over maxResponseBytes: 502 without a retry; the breaker counted the 200 as a success', async (t) => {
  const { origin, breaker, writer } = await rig(t, (_req, res) => { res.end('x'.repeat(1000)) }, '', {
    maxResponseBytes: 100, retry: { retries: 2, delayMs: () => 0 }
  })
  const [error] = await writer.dispatch(items(1)) as Error[]
  t.match(error, { code: 'BW_ERR_UPSTREAM_BAD_RESPONSE', statusCode: 502 })
  t.match((error as Error).message, /answered 200 with more than 100 bytes$/)
  t.equal(origin.received.length, 1)
  t.match(breaker.snapshot(), { failedCalls: 0, state: 'CLOSED' })
})

t.test('an answer cut mid-body: a failure the breaker counts, and retried', async (t) => {
  const { origin, breaker, writer } = await rig(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '100' })
    res.write('[{"status":201}')
    setImmediate(() => { res.destroy() })
  }, '', { retry: { retries: 1, delayMs: () => 0 } })
  t.same(show(await writer.dispatch(items(1))), ['BW_ERR_UPSTREAM_UNREACHABLE 502'])
  t.equal(origin.received.length, 2)
  t.match(breaker.snapshot(), { failedCalls: 2 })
})
