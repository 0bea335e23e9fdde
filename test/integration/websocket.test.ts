// WebSocket Upgrade proxying on routes with `websocket: true`.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { startGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'

async function startEchoSocketServer (t: Test): Promise<{ url: string, paths: string[], headers: Array<Record<string, unknown>> }> {
  const paths: string[] = []
  const headers: Array<Record<string, unknown>> = []
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  server.on('connection', (socket, req) => {
    paths.push(req.url ?? '')
    headers.push(req.headers)
    socket.on('message', (data, isBinary) => { socket.send(data, { binary: isBinary }) })
  })
  await once(server, 'listening')
  t.teardown(async () => {
    for (const client of server.clients) client.terminate()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, paths, headers }
}

t.test('a websocket route tunnels frames both ways, on the rewritten path', async (t) => {
  const origin = await startEchoSocketServer(t)
  const gw = await startGateway(t, `
routes:
  - id: live
    prefix: /live
    rewritePrefix: /ws
    websocket: true
    upstream: ${origin.url}
`)
  const client = new WebSocket(`ws://127.0.0.1:${gw.port}/live/feed?room=1`, { headers: { 'x-request-id': 'ws-1' } })
  t.teardown(() => client.terminate())
  await once(client, 'open')
  client.send('hello')
  const [text] = await once(client, 'message') as [Buffer]
  t.equal(text.toString(), 'hello')
  client.send(Buffer.from([0, 1, 2, 255]))
  const [binary] = await once(client, 'message') as [Buffer]
  t.same([...binary], [0, 1, 2, 255])
  t.same(origin.paths, ['/ws/feed?room=1'])
  t.equal(origin.headers[0]?.['x-request-id'], 'ws-1')
  t.equal(origin.headers[0]?.['x-forwarded-for'], '127.0.0.1')
  client.close()
  await once(client, 'close')
})

t.test('Upgrade is refused with a problem on routes without websocket, on no route, and when the upstream refuses', async (t) => {
  const origin = await startEchoSocketServer(t)
  const gw = await startGateway(t, `
routes:
  - id: plain
    prefix: /plain
    upstream: ${origin.url}
  - id: live
    prefix: /live
    websocket: true
    upstream: ${origin.url}
  - id: dead
    prefix: /dead
    websocket: true
    upstream: http://127.0.0.1:1
  - id: writes
    prefix: /writes
    methods: [POST]
    websocket: true
    upstream: ${origin.url}
`)
  const upgrade = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'

  const plain = await rawRequest(gw.port, upgrade('/plain/x'))
  t.equal(plain.status, 400)
  t.match(plain.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(plain.body), { code: 'BW_ERR_ROUTE_UPGRADE_REFUSED', route: 'plain' })

  const none = await rawRequest(gw.port, upgrade('/nowhere'))
  t.equal(none.status, 404)

  const dead = await rawRequest(gw.port, upgrade('/dead/x'))
  t.equal(dead.status, 502)
  t.match(JSON.parse(dead.body), { code: 'BW_ERR_UPSTREAM_UNREACHABLE', route: 'dead', detail: /^the upstream of route dead / })
  t.notMatch(dead.body, /127\.0\.0\.1/, 'the problem names the route, not the upstream address')

  const unserved = await rawRequest(gw.port, upgrade('/writes/x'))
  t.equal(unserved.status, 405)
  t.equal(unserved.headers.allow, 'POST')
  t.match(JSON.parse(unserved.body), { code: 'BW_ERR_ROUTE_METHOD_NOT_ALLOWED', route: 'writes' })
  t.same(origin.paths, [], 'no refused Upgrade reached the origin')
})

t.test('closing the gateway ends open tunnels', async (t) => {
  const origin = await startEchoSocketServer(t)
  const gw = await startGateway(t, `
routes:
  - id: live
    prefix: /
    websocket: true
    upstream: ${origin.url}
`)
  const client = new WebSocket(`ws://127.0.0.1:${gw.port}/`)
  await once(client, 'open')
  const closed = once(client, 'close')
  await gw.app.close()
  await closed
  t.equal(client.readyState, WebSocket.CLOSED)
})
