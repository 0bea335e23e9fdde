// Upstream failures: refused or reset connections are 502, a slow upstream 504 with its request aborted, a client that leaves aborts upstream.
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { request, type Dispatcher } from 'undici'
import { startGateway } from '../helpers/gateway.js'
import { LEAK } from '../helpers/problem.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitUntil } from '../helpers/wait.js'

/** Asserts a gateway problem naming the route, whose requestId is the X-Request-Id header. */
async function assertUpstreamProblem (t: Test, res: Dispatcher.ResponseData, status: number, code: string, route: string): Promise<void> {
  t.equal(res.statusCode, status)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  const text = await res.body.text()
  t.notMatch(text, LEAK, 'no stack trace or path')
  const problem = JSON.parse(text) as Record<string, unknown>
  t.match(problem, { status, code, route })
  t.equal(problem.requestId, res.headers['x-request-id'], 'requestId is the X-Request-Id header')
}

/** Records when an origin's response closes and whether it was finished: closed unfinished means the gateway aborted it. */
function watchClose (res: ServerResponse, closes: Array<{ finished: boolean, atMs: number }>, startedAt: number): void {
  res.once('close', () => { closes.push({ finished: res.writableFinished, atMs: Date.now() - startedAt }) })
}

t.test('an upstream that refuses connections: 502 BW_ERR_UPSTREAM_UNREACHABLE', async (t) => {
  // A port that was just free: bound, noted, closed.
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))

  const gw = await startGateway(t, `
routes:
  - id: gone
    prefix: /
    upstream: http://127.0.0.1:${port}
`)
  const res = await request(`${gw.url}/x`, { headers: { 'x-request-id': 'refused-1' } })
  t.equal(res.headers['x-request-id'], 'refused-1')
  await assertUpstreamProblem(t, res, 502, 'BW_ERR_UPSTREAM_UNREACHABLE', 'gone')

  const generated = await request(`${gw.url}/y`)
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  await assertUpstreamProblem(t, generated, 502, 'BW_ERR_UPSTREAM_UNREACHABLE', 'gone')
})

t.test('an upstream that resets the connection mid-request: 502', async (t) => {
  const origin = await startUpstream(t, (req) => { req.socket.destroy() })
  const gw = await startGateway(t, `
routes:
  - id: flaky
    prefix: /
    upstream: ${origin.url}
`)
  const res = await request(`${gw.url}/x`, { method: 'POST', body: 'payload' })
  await assertUpstreamProblem(t, res, 502, 'BW_ERR_UPSTREAM_UNREACHABLE', 'flaky')
  t.equal(origin.received.length, 1, 'the origin had the request when it reset')

  // The pool recovers: the next request gets a fresh connection.
  origin.handle((_req, res) => { res.end('back') })
  const next = await request(`${gw.url}/x`)
  t.equal(next.statusCode, 200)
  t.equal(await next.body.text(), 'back')
})

t.test('an upstream that resets after its headers: the client sees a cut body, never a complete one', async (t) => {
  const origin = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' })
    res.write('a'.repeat(100), () => { res.socket?.destroy() })
  })
  const gw = await startGateway(t, `
routes:
  - id: flaky
    prefix: /
    upstream: ${origin.url}
`)
  const res = await request(`${gw.url}/x`)
  t.equal(res.statusCode, 200, 'the status was relayed before the reset')
  await t.rejects(res.body.text(), 'reading the body fails')
})

t.test("an upstream slower than the route's timeout: 504 BW_ERR_UPSTREAM_TIMEOUT and its request is aborted", async (t) => {
  const closes: Array<{ finished: boolean, atMs: number }> = []
  let startedAt = 0
  const origin = await startUpstream(t, (_req, res) => {
    startedAt = Date.now()
    watchClose(res, closes, startedAt)
    const late = setTimeout(() => { if (!res.destroyed) res.end('too late') }, 3_000)
    res.once('close', () => { clearTimeout(late) })
  })
  const gw = await startGateway(t, `
routes:
  - id: slow
    prefix: /
    timeout: 300ms
    upstream: ${origin.url}
`)
  const sent = Date.now()
  const res = await request(`${gw.url}/x`, { headers: { 'x-request-id': 'slow-1' } })
  const elapsedMs = Date.now() - sent
  await assertUpstreamProblem(t, res, 504, 'BW_ERR_UPSTREAM_TIMEOUT', 'slow')
  t.ok(elapsedMs >= 250 && elapsedMs < 2_000, `answered at the timeout, not before nor long after (${elapsedMs} ms)`)

  await waitUntil(() => closes.length === 1, 'the upstream response to close', 2_000)
  t.equal(closes[0]?.finished, false, 'the upstream request was aborted before it answered')
  t.ok((closes[0]?.atMs ?? Infinity) < 2_000, `aborted promptly (${closes[0]?.atMs} ms after it arrived)`)
})

t.test('a client that disconnects before the upstream answers aborts the upstream request', async (t) => {
  const closes: Array<{ finished: boolean, atMs: number }> = []
  let arrived = false
  const origin = await startUpstream(t, (_req, res) => {
    arrived = true
    watchClose(res, closes, Date.now())
  })
  const gw = await startGateway(t, `
routes:
  - id: slow
    prefix: /
    timeout: 10s
    upstream: ${origin.url}
`)
  const abort = new AbortController()
  const pending = request(`${gw.url}/x`, { signal: abort.signal })
  await waitUntil(() => arrived, 'the request at the origin', 3_000)
  abort.abort()
  await t.rejects(pending, { name: 'AbortError' })

  // Within the route's 10 s timeout by far: the abort comes from the client leaving, not from a deadline.
  await waitUntil(() => closes.length === 1, 'the upstream response to close', 3_000)
  t.equal(closes[0]?.finished, false, 'the upstream request was aborted')
  t.equal(origin.received.length, 1)
})
