// SIGTERM: the gateway stops accepting connections, drains in-flight requests for up to server.shutdownTimeout, exits 0.
import { once } from 'node:events'
import { connect } from 'node:net'
import t from 'tap'
import { Client } from 'undici'
import { startCli, writeConfig } from '../helpers/cli.js'
import { parseResponse } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

/** One connection attempt: 'refused', or 'accepted' (the socket is closed again at once). */
async function tryConnect (port: number): Promise<'refused' | 'accepted' | string> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve('accepted') })
    socket.once('error', (err: NodeJS.ErrnoException) => { socket.destroy(); resolve(err.code === 'ECONNREFUSED' ? 'refused' : err.code ?? 'error') })
  })
}

/** Polls until a new connection is refused (the listener has closed); throws past `timeoutMs`. */
async function refusedWithin (port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (await tryConnect(port) !== 'refused') {
    if (Date.now() > deadline) throw new Error(`connections to ${port} still accepted after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('SIGTERM: in-flight requests complete, new connections are refused, exit 0', async (t) => {
  const body = Buffer.alloc(256 * 1024, 'z')
  let arrived = false
  const origin = await startUpstream(t, (_req, res) => {
    arrived = true
    const answer = setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) })
      res.end(body)
    }, 1_000)
    res.once('close', () => { clearTimeout(answer) })
  })
  const file = await writeConfig(t, `
server:
  host: 127.0.0.1
  port: 0
  shutdownTimeout: 10s
routes:
  - id: slow
    prefix: /
    upstream: ${origin.url}
`)
  const gw = await startCli(t, file)
  const client = new Client(gw.url)
  t.teardown(() => client.destroy())

  let completed = false
  const inFlight = client.request({ method: 'GET', path: '/slow' }).then(async (res) => {
    const received = Buffer.from(await res.body.arrayBuffer())
    completed = true
    return { status: res.statusCode, received }
  })
  await waitUntil(() => arrived, 'the request at the origin', 5_000)
  gw.child.kill('SIGTERM')

  // The listener closes once the signal is handled: well before the origin answers, 1 s after the request arrived.
  await refusedWithin(gw.port, 900)
  t.notOk(completed, 'a new connection is refused while the in-flight request is still draining')

  const { status, received } = await withDeadline(inFlight, 'the in-flight response', 5_000)
  t.equal(status, 200)
  t.equal(received.length, body.length, 'the full body')
  t.ok(received.equals(body))

  // Not at shutdownTimeout (10 s): the drained keep-alive connection must not hold the exit.
  const drainedAt = Date.now()
  const exit = await withDeadline(gw.exit, 'the gateway to exit', 5_000)
  t.same(exit, { code: 0, signal: null }, 'exit code 0')
  t.ok(Date.now() - drainedAt < 2_000, `exited once drained (${Date.now() - drainedAt} ms after the response)`)
  t.ok(gw.logs.some((line) => line.msg === 'stopped'), 'it logged that it stopped')
})

t.test('a request that arrives on an open connection while draining gets 503 problem+json and Connection: close', async (t) => {
  let arrived = false
  const origin = await startUpstream(t, (_req, res) => {
    arrived = true
    const answer = setTimeout(() => { res.end('done') }, 1_000)
    res.once('close', () => { clearTimeout(answer) })
  })
  const file = await writeConfig(t, `
server:
  host: 127.0.0.1
  port: 0
routes:
  - id: slow
    prefix: /
    upstream: ${origin.url}
`)
  const gw = await startCli(t, file)
  const client = new Client(gw.url)
  t.teardown(() => client.destroy())
  // Holds the drain open, so the gateway is still serving when the late request comes.
  const inFlight = client.request({ method: 'GET', path: '/slow' }).then(async (res) => await res.body.text())

  // A connection that has begun a request is not idle, so close() leaves it open; its request completes after the signal.
  const late = connect(gw.port, '127.0.0.1')
  t.teardown(() => { late.destroy() })
  const chunks: Buffer[] = []
  late.on('data', (chunk: Buffer) => chunks.push(chunk))
  late.on('error', () => {})
  await once(late, 'connect')
  late.write('GET /late HTTP/1.1\r\nHost: gw\r\n')
  await waitUntil(() => arrived, 'the first request at the origin', 5_000)
  gw.child.kill('SIGTERM')
  await refusedWithin(gw.port, 2_000)
  late.write('X-Late: 1\r\n\r\n')
  await withDeadline(once(late, 'close'), 'the late connection to close', 5_000)

  const res = parseResponse(Buffer.concat(chunks).toString('latin1'))
  t.equal(res.status, 503)
  t.equal(res.headers.connection, 'close')
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.equal(await withDeadline(inFlight, 'the in-flight response', 5_000), 'done', 'the in-flight request still completes')
  t.same(await withDeadline(gw.exit, 'the gateway to exit', 5_000), { code: 0, signal: null })
  t.equal(origin.received.length, 1, 'the late request was not forwarded')
})

t.test('SIGTERM with an upstream that never answers: connections closed at shutdownTimeout, exit 0', async (t) => {
  let arrived = false
  const origin = await startUpstream(t, () => { arrived = true })
  const file = await writeConfig(t, `
server:
  host: 127.0.0.1
  port: 0
  shutdownTimeout: 500ms
routes:
  - id: stuck
    prefix: /
    timeout: 30s
    upstream: ${origin.url}
`)
  const gw = await startCli(t, file)
  const client = new Client(gw.url)
  t.teardown(() => client.destroy())

  const inFlight = client.request({ method: 'GET', path: '/stuck' })
  // Attach the rejection handler now: the failure comes while this test awaits other things.
  const outcome = inFlight.then(() => 'answered', (err: Error & { code?: string }) => err.code ?? err.name)
  await waitUntil(() => arrived, 'the request at the origin', 5_000)
  const signalledAt = Date.now()
  gw.child.kill('SIGTERM')

  const exit = await withDeadline(gw.exit, 'the gateway to exit', 5_000)
  const elapsedMs = Date.now() - signalledAt
  t.same(exit, { code: 0, signal: null }, 'exit code 0')
  t.ok(elapsedMs >= 400, `the in-flight request had its shutdownTimeout (${elapsedMs} ms)`)
  t.ok(elapsedMs < 5_000, `exited within 5 s (${elapsedMs} ms)`)
  t.equal(await outcome, 'UND_ERR_SOCKET', 'the in-flight client saw its connection closed')
})
