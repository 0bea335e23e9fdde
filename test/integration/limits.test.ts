// Limits on what a client may send: header count and size (431), the headers deadline (slowloris), body size (413).
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { connect, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startGateway } from '../helpers/gateway.js'
import { countArrivals, decodedBody, LEAK } from '../helpers/problem.js'
import { parseResponse, rawRequest, type RawResponse } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

function assertProblem (t: Test, res: RawResponse, status: number, code: string, label: string): void {
  t.equal(res.status, status, `${label}: status`)
  t.match(res.headers['content-type'], /^application\/problem\+json/, `${label}: problem+json`)
  const body = decodedBody(res)
  t.notMatch(body, LEAK, `${label}: no stack trace or path`)
  t.match(JSON.parse(body), { status, code }, `${label}: problem code`)
}

/** A request with n header fields in all: Host, Connection: close (rawRequest reads until the server closes), and fillers. */
function requestWithFields (n: number): string {
  let text = 'GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n'
  for (let i = 2; i < n; i++) text += `X-Field-${i}: ${i}\r\n`
  return text + '\r\n'
}

t.test('more than server.maxHeaders header fields get 431; exactly maxHeaders pass', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
server:
  maxHeaders: 10
routes:
  - id: all
    prefix: /
    upstream: ${origin.url}
`)
  const atLimit = await rawRequest(gw.port, requestWithFields(10))
  t.equal(atLimit.status, 200, 'exactly 10 fields pass')
  t.equal(origin.received.length, 1)

  for (const n of [11, 50]) {
    assertProblem(t, await rawRequest(gw.port, requestWithFields(n)), 431, 'BW_ERR_REQUEST_HEADERS_TOO_LARGE', `${n} fields`)
  }
  t.equal(origin.received.length, 1, 'nothing over the limit reached the origin')
})

t.test('more than 16 KB of header fields get 431', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: all
    prefix: /
    upstream: ${origin.url}
`)
  const under = await rawRequest(gw.port, `GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nX-Big: ${'a'.repeat(15 * 1024)}\r\n\r\n`)
  t.equal(under.status, 200, '15 KB of headers pass')
  t.equal(origin.received.length, 1)

  const oneField = await rawRequest(gw.port, `GET /x HTTP/1.1\r\nHost: gw\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`)
  assertProblem(t, oneField, 431, 'BW_ERR_REQUEST_HEADERS_TOO_LARGE', 'one 17 KB field')
  let many = 'GET /x HTTP/1.1\r\nHost: gw\r\n'
  for (let i = 0; i < 90; i++) many += `X-Field-${i}: ${'b'.repeat(200)}\r\n`
  assertProblem(t, await rawRequest(gw.port, many + '\r\n'), 431, 'BW_ERR_REQUEST_HEADERS_TOO_LARGE', '90 fields of 200 bytes')
  t.equal(origin.received.length, 1, 'nothing over the limit reached the origin')
})

t.test('a client that has not sent its headers within server.headersTimeout is disconnected', async (t) => {
  const origin = await startUpstream(t)
  const arrivals = countArrivals(origin)
  const gw = await startGateway(t, `
server:
  headersTimeout: 500ms
routes:
  - id: all
    prefix: /
    upstream: ${origin.url}
`)
  interface Slow { socket: Socket, closed: Promise<{ elapsedMs: number, text: string }> }
  const open = (first: string): Slow => {
    const socket = connect(gw.port, '127.0.0.1')
    t.teardown(() => { socket.destroy() })
    const started = Date.now()
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', () => {})
    socket.write(first)
    const closed = once(socket, 'close').then(() => ({ elapsedMs: Date.now() - started, text: Buffer.concat(chunks).toString('latin1') }))
    return { socket, closed }
  }
  const partialLine = open('GET /x HT')
  const partialHeaders = open('GET /x HTTP/1.1\r\nHost: gw\r\nX-Partial: abc')
  // The slowloris proper: a byte every 100 ms keeps the socket busy, but the deadline covers the whole header section.
  const trickle = open('GET /x HTTP/1.1\r\nHost: gw\r\n')
  // Bounded: 40 bytes at most, stopped by the close it waits for.
  let sent = 0
  const drip = setInterval(() => {
    if (trickle.socket.destroyed || ++sent > 40) clearInterval(drip)
    else trickle.socket.write('X')
  }, 100)
  t.teardown(() => { clearInterval(drip) })

  for (const [label, slow] of Object.entries({ 'a partial request line': partialLine, 'partial headers': partialHeaders, 'a byte every 100 ms': trickle })) {
    const { elapsedMs, text } = await withDeadline(slow.closed, `${label}: the gateway closing the socket`, 5_000)
    t.ok(elapsedMs >= 400, `${label}: not closed before the deadline (${elapsedMs} ms)`)
    t.ok(elapsedMs < 3_000, `${label}: closed within 3 s (${elapsedMs} ms)`)
    assertProblem(t, parseResponse(text), 408, 'BW_ERR_REQUEST_TIMEOUT', label)
  }
  t.equal(arrivals(), 0, 'nothing reached the origin')
})

t.test("a Content-Length over the route's bodyLimit gets 413 without reaching the origin", async (t) => {
  const origin = await startUpstream(t)
  const arrivals = countArrivals(origin)
  const gw = await startGateway(t, `
server:
  bodyLimit: 1kb
routes:
  - id: small
    prefix: /
    upstream: ${origin.url}
`)
  const res = await request(`${gw.url}/upload`, { method: 'POST', body: Buffer.alloc(1025, 'a'), headers: { 'x-request-id': 'too-big' } })
  t.equal(res.statusCode, 413)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(await res.body.json(), { status: 413, code: 'BW_ERR_REQUEST_BODY_TOO_LARGE', route: 'small', requestId: 'too-big' })

  const atLimit = await request(`${gw.url}/upload`, { method: 'POST', body: Buffer.alloc(1024, 'a') })
  t.equal(atLimit.statusCode, 200, 'a body of exactly bodyLimit passes')
  await atLimit.body.dump()
  t.equal(arrivals(), 1, 'only the body within the limit reached the origin')
  t.equal(origin.received[0]?.bodyBytes, 1024)
})

t.test('a chunked body that grows over bodyLimit gets 413 and the upstream request is aborted', async (t) => {
  const origin = await startUpstream(t)
  let seenBytes = 0
  const aborted: boolean[] = []
  origin.server.on('request', (req: IncomingMessage) => {
    req.on('data', (chunk: Buffer) => { seenBytes += chunk.length })
    req.on('close', () => { aborted.push(!req.complete) })
  })
  const gw = await startGateway(t, `
server:
  bodyLimit: 1kb
routes:
  - id: small
    prefix: /
    upstream: ${origin.url}
`)
  async function * body (): AsyncGenerator<Buffer> {
    yield Buffer.alloc(600, 'a')
    // The first chunk is upstream before the limit is crossed: the gateway must abort a request already under way.
    await waitUntil(() => seenBytes >= 600, 'the first chunk at the origin', 3_000)
    yield Buffer.alloc(600, 'b')
    yield Buffer.alloc(600, 'c')
  }
  const res = await request(`${gw.url}/upload`, { method: 'POST', body: Readable.from(body()) })
  t.equal(res.statusCode, 413)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(await res.body.json(), { status: 413, code: 'BW_ERR_REQUEST_BODY_TOO_LARGE', route: 'small' })

  await waitUntil(() => aborted.length === 1, 'the upstream request to end', 3_000)
  t.same(aborted, [true], 'the origin saw its request aborted, not completed')
  t.ok(seenBytes <= 1024, `the origin never saw more than the limit (${seenBytes} bytes)`)
  t.equal(origin.received.length, 0, 'the origin never received a complete request')
})

t.test('a per-route bodyLimit above server.bodyLimit lets a body through that the default refuses', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
server:
  bodyLimit: 1kb
routes:
  - id: uploads
    prefix: /uploads
    bodyLimit: 4kb
    upstream: ${origin.url}
  - id: other
    prefix: /
    upstream: ${origin.url}
`)
  const payload = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251))
  const fixed = await request(`${gw.url}/uploads/a`, { method: 'PUT', body: payload })
  t.equal(fixed.statusCode, 200)
  await fixed.body.dump()
  const chunked = await request(`${gw.url}/uploads/b`, { method: 'POST', body: Readable.from([payload.subarray(0, 1000), payload.subarray(1000)]) })
  t.equal(chunked.statusCode, 200)
  await chunked.body.dump()
  t.equal(origin.received.length, 2)
  t.ok(origin.received[0]?.body.equals(payload), 'with a length: intact')
  t.ok(origin.received[1]?.body.equals(payload), 'chunked: intact')

  const refused = await request(`${gw.url}/elsewhere`, { method: 'PUT', body: payload })
  t.equal(refused.statusCode, 413, 'the server default refuses the same body on another route')
  t.match(await refused.body.json(), { code: 'BW_ERR_REQUEST_BODY_TOO_LARGE', route: 'other' })
  t.equal(origin.received.length, 2)
})
