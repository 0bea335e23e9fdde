// Upstream failures: refused or reset connections are 502, a slow upstream 504 with its request aborted, a client that leaves
// (or stalls past server.sendTimeout) aborts upstream.
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
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
  t.match(problem, { status, code, route, detail: `the upstream of route ${route} ` })
  // Every upstream of these tests is on 127.0.0.1: its address is for the log, never for the client.
  t.notMatch(text, /127\.0\.0\.1|:\/\//, 'the problem names the route, not the upstream address')
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

t.test('a client that takes in nothing for server.sendTimeout is disconnected and its upstream request aborted', async (t) => {
  const closes: Array<{ finished: boolean, atMs: number }> = []
  const chunk = Buffer.alloc(64 * 1024, 1)
  // Endless until the gateway goes away: far more than the sockets on the way hold.
  const origin = await startUpstream(t, (_req, res) => {
    watchClose(res, closes, Date.now())
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    const write = (): void => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', write)
    }
    write()
  })
  const gw = await startGateway(t, `
server:
  sendTimeout: 300ms
routes:
  - id: big
    prefix: /
    timeout: 10s
    upstream: ${origin.url}
`)
  // A raw client that sends its request and never reads: its socket is paused from the start.
  const client = connect(gw.port, '127.0.0.1')
  t.teardown(() => client.destroy())
  client.pause()
  client.write('GET /big HTTP/1.1\r\nHost: gw.test\r\n\r\n')
  const closed = once(client, 'close')
  // Within the route's 10 s timeout by far: the send timeout cuts the client, and the upstream request goes with it.
  await waitUntil(() => closes.length === 1, 'the upstream response to close', 5_000)
  t.equal(closes[0]?.finished, false, 'the upstream request was aborted')
  client.resume()
  await closed
  t.pass('the gateway closed the stalled client\'s connection')
})

t.test('a client that reads in bursts, each gap shorter than server.sendTimeout, gets every byte', async (t) => {
  const body = Buffer.alloc(6 * 1024 * 1024, 7)
  const origin = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-length': String(body.length) })
    res.end(body)
  })
  const gw = await startGateway(t, `
server:
  sendTimeout: 1s
routes:
  - id: big
    prefix: /
    timeout: 200ms
    upstream: ${origin.url}
`)
  const res = await request(`${gw.url}/big`, { highWaterMark: 64 * 1024 })
  let received = 0
  let sincePause = 0
  // 1 MiB, then 600 ms of nothing, and again: the gateway waits on a full socket for longer than the send timeout
  // in all, but the client takes something in within each period of it.
  for await (const part of res.body) {
    received += (part as Buffer).length
    sincePause += (part as Buffer).length
    if (sincePause >= 1024 * 1024) {
      sincePause = 0
      await delay(600)
    }
  }
  t.equal(res.statusCode, 200)
  t.equal(received, body.length, 'every byte arrived')
})
