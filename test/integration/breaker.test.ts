// Circuit breakers and retries on the proxy path: a real flaky origin behind a real gateway.
import type { ServerResponse } from 'node:http'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { FakeClock } from '../helpers/clock.js'
import { startGateway } from '../helpers/gateway.js'
import { parsePrometheus, valueOf } from '../helpers/prometheus.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { waitUntil } from '../helpers/wait.js'

type Mode = 'ok' | 'fail' | 'not-found' | 'slow'

/** An origin whose answer the test switches: 200, 500, 404, or 200 after 150 ms. */
async function flakyUpstream (t: Test): Promise<Upstream & { mode: (next: Mode) => void }> {
  let mode: Mode = 'ok'
  const upstream = await startUpstream(t, (_req, res: ServerResponse) => {
    if (mode === 'fail') {
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end('boom')
    } else if (mode === 'not-found') {
      res.writeHead(404)
      res.end()
    } else if (mode === 'slow') {
      setTimeout(() => { res.end('slow ok') }, 150)
    } else {
      res.end('ok')
    }
  })
  return Object.assign(upstream, { mode: (next: Mode) => { mode = next } })
}

const get = async (url: string, init: Parameters<typeof request>[1] = {}): Promise<{ status: number, headers: Record<string, unknown>, body: string }> => {
  const res = await request(url, init)
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

/** A gateway whose log lines (at `level` and above) the test reads. */
async function startLoggedGateway (t: Test, level: string, yaml: string): Promise<{ url: string, lines: Array<Record<string, unknown>> }> {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  const { url } = await startGateway(t, yaml, { logger })
  return { url, lines }
}

t.test('opens after exactly failureThreshold consecutive failures; while open the upstream sees nothing', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    breaker: {failureThreshold: 3, recoveryTimeout: 30s}
`)
  origin.mode('fail')
  for (let i = 0; i < 2; i++) t.equal((await get(`${gw.url}/x`)).status, 500, `failure ${i + 1} is relayed`)
  origin.mode('ok')
  t.equal((await get(`${gw.url}/x`)).status, 200, 'a success resets the count')
  origin.mode('fail')
  for (let i = 0; i < 3; i++) t.equal((await get(`${gw.url}/x`)).status, 500)
  const seen = origin.received.length

  const open = await get(`${gw.url}/x`)
  t.equal(open.status, 503)
  t.match(open.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(open.body), { code: 'BW_ERR_UPSTREAM_CIRCUIT_OPEN', route: 'catalog' })
  const retryAfter = Number(open.headers['retry-after'])
  t.ok(retryAfter >= 29 && retryAfter <= 30, `Retry-After counts down to the probe (${retryAfter})`)
  t.equal(origin.received.length, seen, 'the open breaker answered without touching the upstream')
})

t.test('half-open after recoveryTimeout: exactly halfOpenCalls trials; success closes, failure reopens with backoff', async (t) => {
  const origin = await flakyUpstream(t)
  const clock = FakeClock.wall()
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    breaker: {failureThreshold: 1, recoveryTimeout: 1s, halfOpenCalls: 2, recoveryBackoff: {multiplier: 3, max: 5s}}
`, { now: clock.now })
  origin.mode('fail')
  t.equal((await get(`${gw.url}/x`)).status, 500)
  t.equal((await get(`${gw.url}/x`)).status, 503, 'open')

  // The first trial fails: open again, for three times as long.
  clock.advance(1_000)
  t.equal((await get(`${gw.url}/x`)).status, 500, 'a half-open trial')
  const reopened = await get(`${gw.url}/x`)
  t.equal(reopened.status, 503)
  t.ok(Number(reopened.headers['retry-after']) >= 2, `the second open waits longer (Retry-After ${String(reopened.headers['retry-after'])})`)

  origin.mode('slow')
  const before = origin.received.length
  clock.advance(3_000)
  // Three concurrent calls once half-open after the longer wait: two trials go through, the third is refused.
  const answers = await Promise.all([0, 1, 2].map(async () => (await get(`${gw.url}/x`)).status))
  t.same(answers.sort(), [200, 200, 503], 'exactly halfOpenCalls trials')
  t.equal(origin.received.length - before, 2)
  origin.mode('ok')
  t.equal((await get(`${gw.url}/x`)).status, 200, 'closed after the trials succeeded')
  t.equal((await get(`${gw.url}/x`)).status, 200)
})

t.test('the fallback answers while open', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    breaker:
      failureThreshold: 1
      fallback: {status: 503, contentType: application/json, body: '{"error":"catalog is unavailable"}'}
`)
  origin.mode('fail')
  await get(`${gw.url}/x`)
  const fallback = await get(`${gw.url}/x`)
  t.equal(fallback.status, 503)
  t.equal(fallback.headers['content-type'], 'application/json')
  t.equal(fallback.body, '{"error":"catalog is unavailable"}')
  t.ok(Number(fallback.headers['retry-after']) > 0)
})

t.test('observe mode never rejects', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    breaker: {mode: observe, failureThreshold: 1}
`)
  origin.mode('fail')
  for (let i = 0; i < 5; i++) t.equal((await get(`${gw.url}/x`)).status, 500)
  t.equal(origin.received.length, 5)
  const scrape = parsePrometheus((await get(`${gw.url}/actuator/prometheus`)).body)
  t.equal(valueOf(scrape, 'resilience4j_circuitbreaker_state', { name: 'catalog', state: 'metrics_only' }), 1)
  t.equal(valueOf(scrape, 'resilience4j_circuitbreaker_calls_seconds_count', { name: 'catalog', kind: 'failed' }), 5, 'the failures show')
  t.equal(valueOf(scrape, 'resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'catalog', kind: 'not_permitted' }), 0)
})

t.test('4xx answers and clients that leave do not count as failures', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    breaker: {failureThreshold: 2}
`)
  origin.mode('not-found')
  for (let i = 0; i < 4; i++) t.equal((await get(`${gw.url}/x`)).status, 404)
  origin.mode('slow')
  for (let i = 0; i < 3; i++) {
    const aborted = request(`${gw.url}/slow`, { signal: AbortSignal.timeout(30) })
    await t.rejects(aborted)
  }
  await waitUntil(() => origin.received.length >= 7, 'the slow requests at the origin', 3_000)
  origin.mode('ok')
  t.equal((await get(`${gw.url}/x`)).status, 200, 'still closed')
})

t.test('a timeout is a 504 and counts as a failure', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    timeout: 50ms
    breaker: {failureThreshold: 2}
`)
  origin.mode('slow')
  t.equal((await get(`${gw.url}/x`)).status, 504)
  t.equal((await get(`${gw.url}/x`)).status, 504)
  t.equal((await get(`${gw.url}/x`)).status, 503, 'two timeouts opened it')
})

t.test('the failure-rate trigger waits for minimumCalls', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    breaker: {failureThreshold: 100, failureRateThreshold: 50, minimumCalls: 4, slidingWindow: 1m}
`)
  origin.mode('ok')
  await get(`${gw.url}/x`)
  await get(`${gw.url}/x`)
  origin.mode('fail')
  t.equal((await get(`${gw.url}/x`)).status, 500, '1 of 3 failed: below minimumCalls')
  t.equal((await get(`${gw.url}/x`)).status, 500, '2 of 4 failed: 50% opens it')
  t.equal((await get(`${gw.url}/x`)).status, 503)
})

t.test('the slow-call trigger opens on slow successes', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    breaker: {slowCallThreshold: 50ms, slowCallRateThreshold: 50, minimumCalls: 2, slidingWindow: 1m}
`)
  origin.mode('slow')
  t.equal((await get(`${gw.url}/x`)).status, 200)
  t.equal((await get(`${gw.url}/x`)).status, 200)
  t.equal((await get(`${gw.url}/x`)).status, 503, 'slow calls opened it')
})

t.test('retries: idempotent methods are retried through the breaker, POST never', async (t) => {
  let failuresLeft = 0
  const origin = await startUpstream(t, (_req, res) => {
    if (failuresLeft > 0) {
      failuresLeft--
      res.writeHead(503, { 'retry-after': '0' })
      res.end()
      return
    }
    res.end('ok')
  })
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    retry: {retries: 2, backoff: 10ms, maxBackoff: 50ms}
    breaker: {failureThreshold: 10}
`)
  failuresLeft = 2
  const retried = await get(`${gw.url}/x`)
  t.equal(retried.status, 200, 'two 503s, then the answer')
  t.equal(origin.received.length, 3)

  failuresLeft = 3
  const exhausted = await get(`${gw.url}/x`)
  t.equal(exhausted.status, 503, 'the last attempt is relayed as it came')
  t.equal(origin.received.length, 6)

  failuresLeft = 1
  const post = await get(`${gw.url}/x`, { method: 'POST', body: 'x' })
  t.equal(post.status, 503, 'POST is not retried')
  t.equal(origin.received.length, 7)
})

t.test('retries stop once the breaker opens', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    retry: {retries: 5, backoff: 1ms, maxBackoff: 5ms, on: [500]}
    breaker: {failureThreshold: 2}
`)
  origin.mode('fail')
  const res = await get(`${gw.url}/x`)
  t.equal(res.status, 503)
  t.match(JSON.parse(res.body), { code: 'BW_ERR_UPSTREAM_CIRCUIT_OPEN' })
  t.equal(origin.received.length, 2, 'two attempts, then the open breaker refused the third')
})

t.test('connect failures are retried on another upstream', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: [http://127.0.0.1:1, ${origin.url}]
    retry: {retries: 1, backoff: 1ms, maxBackoff: 5ms}
`)
  for (let i = 0; i < 4; i++) t.equal((await get(`${gw.url}/x`)).status, 200, `request ${i + 1}`)
})

t.test('proxied traffic shows in the metrics, and an operator steers the breaker over the actuator', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
management:
  token: op-token
routes:
  - id: catalog
    prefix: /api/catalog
    upstream: ${origin.url}
    breaker: {failureThreshold: 2}
    retry: {retries: 1, backoff: 1ms, maxBackoff: 2ms, on: [500]}
`)
  origin.mode('ok')
  for (let i = 0; i < 3; i++) await get(`${gw.url}/api/catalog/items`)
  origin.mode('fail')
  t.equal((await get(`${gw.url}/api/catalog/items`)).status, 500, 'two failed attempts: relayed, and the breaker opens')
  t.equal((await get(`${gw.url}/api/catalog/items`)).status, 503)
  await get(`${gw.url}/nowhere`)

  const scrape = parsePrometheus((await get(`${gw.url}/actuator/prometheus`)).body)
  t.equal(valueOf(scrape, 'transactions_total', { route: 'catalog', method: 'GET', status: '200' }), 3)
  t.equal(valueOf(scrape, 'transactions_total', { route: 'catalog', method: 'GET', status: '500' }), 1)
  t.equal(valueOf(scrape, 'transactions_total', { route: 'catalog', method: 'GET', status: '503' }), 1)
  t.equal(valueOf(scrape, 'http_server_requests_seconds_count', { uri: '/api/catalog', status: '200', outcome: 'SUCCESS', exception: 'None' }), 3)
  t.equal(valueOf(scrape, 'http_server_requests_seconds_count', { uri: '/api/catalog', status: '503', outcome: 'SERVER_ERROR', exception: 'BW_ERR_UPSTREAM_CIRCUIT_OPEN' }), 1)
  t.equal(valueOf(scrape, 'http_server_requests_seconds_count', { uri: 'NOT_FOUND', status: '404' }), 1)
  t.equal(valueOf(scrape, 'resilience4j_circuitbreaker_state', { name: 'catalog', state: 'open' }), 1)
  t.equal(valueOf(scrape, 'resilience4j_circuitbreaker_state', { name: 'catalog', state: 'closed' }), 0)
  t.equal(valueOf(scrape, 'resilience4j_circuitbreaker_calls_seconds_count', { name: 'catalog', kind: 'successful' }), 3)
  t.equal(valueOf(scrape, 'resilience4j_circuitbreaker_calls_seconds_count', { name: 'catalog', kind: 'failed' }), 2)
  t.equal(valueOf(scrape, 'resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'catalog', kind: 'not_permitted' }), 1)
  t.equal(valueOf(scrape, 'resilience4j_retry_calls_total', { name: 'catalog', kind: 'successful_without_retry' }), 3)
  t.equal(valueOf(scrape, 'resilience4j_retry_calls_total', { name: 'catalog', kind: 'failed_with_retry' }), 1)
  t.equal(valueOf(scrape, 'resilience4j_retry_calls_total', { name: 'catalog', kind: 'failed_without_retry' }), 1, 'the refusal')

  const steer = async (updateState: string, token?: string): Promise<{ status: number, body: string }> =>
    await get(`${gw.url}/actuator/circuitbreakers/catalog`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      body: JSON.stringify({ updateState })
    })
  t.equal((await steer('CLOSE')).status, 401, 'no token')
  t.equal((await steer('CLOSE', 'wrong')).status, 401, 'wrong token')
  const closed = await steer('CLOSE', 'op-token')
  t.equal(closed.status, 200)
  t.match(JSON.parse(closed.body), { circuitBreakerName: 'catalog', currentState: 'CLOSED' })
  origin.mode('ok')
  t.equal((await get(`${gw.url}/api/catalog/items`)).status, 200, 'closed by the operator')
  t.equal((await steer('FORCE_OPEN', 'op-token')).status, 200)
  const seen = origin.received.length
  t.equal((await get(`${gw.url}/api/catalog/items`)).status, 503, 'forced open')
  t.equal(origin.received.length, seen)
  t.equal((await steer('DISABLE', 'op-token')).status, 200)
  origin.mode('fail')
  for (let i = 0; i < 4; i++) await get(`${gw.url}/api/catalog/items`)
  origin.mode('ok')
  t.equal((await get(`${gw.url}/api/catalog/items`)).status, 200, 'a disabled breaker never opens')
})

t.test('every state change is logged once, with route, from, to and reason', async (t) => {
  const origin = await flakyUpstream(t)
  const { url, lines } = await startLoggedGateway(t, 'warn', `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    breaker: {failureThreshold: 2}
`)
  origin.mode('fail')
  for (let i = 0; i < 4; i++) await get(`${url}/x`)
  const transitions = lines.filter((line) => line.from !== undefined)
  t.same(transitions.map(({ route, from, to, reason }) => ({ route, from, to, reason })), [
    { route: 'catalog', from: 'CLOSED', to: 'OPEN', reason: 'failureThreshold' }
  ])
})

t.test('a Retry-After on a 503 sets the wait before the retry, capped at maxBackoff', async (t) => {
  const arrivals: number[] = []
  let retryAfter = '1'
  const origin = await startUpstream(t, (_req, res) => {
    arrivals.push(Date.now())
    if (arrivals.length % 2 === 1) {
      res.writeHead(503, { 'retry-after': retryAfter })
      res.end()
      return
    }
    res.end('ok')
  })
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    retry: {retries: 1, backoff: 1ms, maxBackoff: 1500ms}
`)
  t.equal((await get(`${gw.url}/x`)).status, 200)
  const honoured = (arrivals[1] as number) - (arrivals[0] as number)
  t.ok(honoured >= 950, `the retry waited for Retry-After: 1 (${honoured} ms)`)

  retryAfter = '3600'
  t.equal((await get(`${gw.url}/x`)).status, 200)
  const capped = (arrivals[3] as number) - (arrivals[2] as number)
  t.ok(capped >= 1450 && capped < 3_000, `an hour is capped at maxBackoff (${capped} ms)`)
})

t.test('the fast-fail answer of an open breaker is counted, logged and shaped like every other answer', async (t) => {
  const origin = await flakyUpstream(t)
  const { url, lines } = await startLoggedGateway(t, 'info', `
routes:
  - id: catalog
    prefix: /api/catalog
    upstream: ${origin.url}
    retry: {retries: 1, backoff: 1ms, maxBackoff: 5ms}
    breaker: {failureThreshold: 1}
`)
  origin.mode('fail')
  t.equal((await get(`${url}/api/catalog/x`, { method: 'POST', body: 'a' })).status, 500, 'the failure that opens it (POST: not retried)')

  // Quotes and a backslash are legal in a request id, and must come out escaped in the JSON body.
  const requestId = 'fast-fail-"1\\'
  const open = await get(`${url}/api/catalog/x?q=1`, { headers: { 'x-request-id': requestId } })
  const notFound = await get(`${url}/elsewhere`)
  t.equal(open.status, 503)
  t.equal(open.headers['content-type'], notFound.headers['content-type'], 'the same problem content type as the gateway\'s other answers')
  t.equal(open.headers['x-request-id'], requestId, 'the client\'s request id is echoed')
  t.equal(Number(open.headers['content-length']), Buffer.byteLength(open.body))
  t.same(JSON.parse(open.body), {
    type: 'urn:breakwater:problem:BW_ERR_UPSTREAM_CIRCUIT_OPEN',
    title: 'Circuit breaker open',
    status: 503,
    detail: `the circuit breaker of route catalog is open; retry in ${String(open.headers['retry-after'])} s`,
    code: 'BW_ERR_UPSTREAM_CIRCUIT_OPEN',
    route: 'catalog',
    requestId
  })

  // An id as long as the GET's, so the two bodies are as long.
  const head = await get(`${url}/api/catalog/x`, { method: 'HEAD', headers: { 'x-request-id': 'fast-fail-"2\\' } })
  t.equal(head.status, 503)
  t.equal(head.body, '', 'a HEAD gets the headers only')
  t.equal(head.headers['content-length'], open.headers['content-length'], 'the length of the body a GET gets')

  const line = lines.find((l) => l.requestId === requestId)
  t.match(line, { msg: 'request', route: 'catalog', method: 'GET', url: '/api/catalog/x?q=1', status: 503, durationMs: Number }, 'one access-log line')

  const metrics = parsePrometheus((await get(`${url}/actuator/prometheus`)).body)
  t.equal(valueOf(metrics, 'transactions_total', { route: 'catalog', method: 'GET', status: '503' }), 1)
  t.equal(valueOf(metrics, 'http_server_requests_seconds_count', {
    method: 'GET', uri: '/api/catalog', status: '503', outcome: 'SERVER_ERROR', exception: 'BW_ERR_UPSTREAM_CIRCUIT_OPEN'
  }), 1)
  t.equal(valueOf(metrics, 'resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'catalog', kind: 'not_permitted' }), 2)
  t.equal(valueOf(metrics, 'resilience4j_retry_calls_total', { name: 'catalog', kind: 'failed_without_retry' }), 3, 'the POST and both refusals')
})

t.test('a retry that finds the breaker opened meanwhile gets the fallback', async (t) => {
  const origin = await flakyUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /
    upstream: ${origin.url}
    retry: {retries: 3, backoff: 1ms, maxBackoff: 5ms, on: [500]}
    breaker:
      failureThreshold: 2
      fallback: {status: 200, contentType: text/plain, body: cached-ish}
`)
  origin.mode('fail')
  const res = await get(`${gw.url}/x`)
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'text/plain')
  t.equal(res.body, 'cached-ish')
  t.ok(Number(res.headers['retry-after']) > 0)
  t.equal(origin.received.length, 2, 'two attempts, then the fallback')
})
