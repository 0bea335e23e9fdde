// 1xx interim answers (RFC 9110 section 15.2): passed on ahead of the final answer, never stored. A raw TCP origin
// writes them, a raw client reads every byte the gateway sends.
import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'

const INTERIM = 'HTTP/1.1 102 Processing\r\n\r\n' +
  'HTTP/1.1 104 Upload Resumption Supported\r\nUpload-Draft-Interop-Version: 6\r\n\r\n' +
  'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\nLink: </app.js>; rel=preload; as=script\r\nX-Hint: 1\r\n\r\n'

/** An origin that answers every request with a 102, a 104 (a draft's, unknown to Node), a 103 with two Links, then a cacheable 200. */
async function rawOrigin (t: Test): Promise<{ url: string, requests: () => number }> {
  let requests = 0
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    let received = ''
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1')
      while (received.includes('\r\n\r\n')) {
        received = received.slice(received.indexOf('\r\n\r\n') + 4)
        requests++
        socket.write(INTERIM)
        socket.write('HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal')
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests }
}

const statusLines = (text: string): string[] => text.split('\r\n').filter((line) => line.startsWith('HTTP/1.'))

t.test('a 102 and a 103 reach the client before the final answer; the cached answer has none', async (t) => {
  const origin = await rawOrigin(t)
  const gw = await startGateway(t, `routes:\n  - id: c\n    prefix: /\n    upstream: ${origin.url}\n    cache: {}\n`)
  const first = await rawRequest(gw.port, 'GET /page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  t.same(statusLines(first.text), ['HTTP/1.1 102 Processing', 'HTTP/1.1 104 Upload Resumption Supported', 'HTTP/1.1 103 Early Hints', 'HTTP/1.1 200 OK'])
  t.match(first.text, /104 Upload Resumption Supported\r\nupload-draft-interop-version: 6\r\n\r\n/i)
  const hints = first.text.slice(first.text.indexOf('103 Early Hints'), first.text.indexOf('HTTP/1.1 200'))
  t.match(hints, /link: <\/style\.css>; rel=preload; as=style\r\nlink: <\/app\.js>; rel=preload; as=script\r\nx-hint: 1\r\n\r\n$/i, 'both Links and the other field, in order')
  t.ok(first.text.endsWith('final'))
  t.match(first.text.slice(first.text.indexOf('HTTP/1.1 200')), /x-cache: MISS/i)

  const second = await rawRequest(gw.port, 'GET /page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  t.same(statusLines(second.text), ['HTTP/1.1 200 OK'], 'a HIT: the interim answers were not stored')
  t.match(second.text, /x-cache: HIT/i)
  t.ok(second.text.endsWith('final'))
  t.equal(origin.requests(), 1)
})

t.test('an HTTP/1.0 client gets the final answer only', async (t) => {
  const origin = await rawOrigin(t)
  const gw = await startGateway(t, `routes:\n  - id: p\n    prefix: /\n    upstream: ${origin.url}\n`)
  const answer = await rawRequest(gw.port, 'GET /page HTTP/1.0\r\nHost: localhost\r\n\r\n')
  t.same(statusLines(answer.text), ['HTTP/1.1 200 OK'], 'RFC 9110 section 15.2: no 1xx to an HTTP/1.0 client')
  t.ok(answer.text.endsWith('final'))
})
