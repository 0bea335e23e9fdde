// Proxy behaviour end to end: a real origin, a real gateway, real HTTP between them.
import t from 'tap'
import { Readable } from 'node:stream'
import { pino } from 'pino'
import { Client, request } from 'undici'
import { startGateway } from '../helpers/gateway.js'
import { parsePrometheus, valueOf } from '../helpers/prometheus.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitUntil } from '../helpers/wait.js'

interface Echo { method: string, url: string, headers: Record<string, string>, body: string }

t.test('forwards to the route with the longest matching prefix, query string intact', async (t) => {
  const catalog = await startUpstream(t)
  const api = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: api
    prefix: /api
    upstream: ${api.url}
  - id: catalog
    prefix: /api/catalog
    upstream: ${catalog.url}
`)
  const res = await request(`${gw.url}/api/catalog/items?b=2&a=1&a=3`)
  t.equal(res.statusCode, 200)
  const echo = await res.body.json() as Echo
  t.equal(echo.url, '/api/catalog/items?b=2&a=1&a=3')
  t.equal(catalog.received.length, 1)
  t.equal(api.received.length, 0)

  // Segment boundary: /api/catalogue is not under /api/catalog.
  await (await request(`${gw.url}/api/catalogue`)).body.dump()
  t.equal(api.received.length, 1)
  t.equal(catalog.received.length, 1)
})

t.test('404 and 405 are problem+json; 405 lists the methods in Allow', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /api/catalog
    methods: [GET, HEAD]
    upstream: ${origin.url}
`)
  const missing = await request(`${gw.url}/elsewhere`, { headers: { 'x-request-id': 'req-404' } })
  t.equal(missing.statusCode, 404)
  t.match(missing.headers['content-type'], /^application\/problem\+json/)
  t.same(await missing.body.json(), {
    type: 'urn:breakwater:problem:BW_ERR_ROUTE_NOT_FOUND',
    title: 'No route matches this request',
    status: 404,
    detail: 'no route matches this host and path',
    code: 'BW_ERR_ROUTE_NOT_FOUND',
    requestId: 'req-404'
  })

  const post = await request(`${gw.url}/api/catalog/items`, { method: 'POST', body: '{}' })
  t.equal(post.statusCode, 405)
  t.equal(post.headers.allow, 'GET, HEAD')
  t.match(await post.body.json(), { status: 405, code: 'BW_ERR_ROUTE_METHOD_NOT_ALLOWED', route: 'catalog', requestId: post.headers['x-request-id'] },
    'the 405 names the route whose prefix matched, like every problem of a route')
  t.equal(origin.received.length, 0, 'nothing refused reaches the origin')
})

t.test('a method another route serves falls through to the shorter prefix', async (t) => {
  const reads = await startUpstream(t)
  const rest = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: reads
    prefix: /api/catalog
    methods: [GET]
    upstream: ${reads.url}
  - id: rest
    prefix: /api
    upstream: ${rest.url}
`)
  const res = await request(`${gw.url}/api/catalog/1`, { method: 'DELETE' })
  t.equal(res.statusCode, 200)
  await res.body.dump()
  t.equal(rest.received.length, 1)
  t.equal(reads.received.length, 0)
})

t.test('host-specific routes win over host-less ones on the same prefix', async (t) => {
  const tenant = await startUpstream(t)
  const shared = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: shared
    prefix: /app
    upstream: ${shared.url}
  - id: tenant
    prefix: /app
    host: Acme.Example.com
    upstream: ${tenant.url}
`)
  await (await request(`${gw.url}/app/x`, { headers: { host: 'acme.example.com:8080' } })).body.dump()
  await (await request(`${gw.url}/app/x`, { headers: { host: 'other.example.com' } })).body.dump()
  t.equal(tenant.received.length, 1)
  t.equal(shared.received.length, 1)
})

t.test('rewritePrefix replaces the matched prefix; "" strips it', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: catalog
    prefix: /api/catalog
    rewritePrefix: /catalog
    upstream: ${origin.url}
  - id: stripped
    prefix: /bare
    rewritePrefix: ""
    upstream: ${origin.url}
`)
  const urls: string[] = []
  for (const path of ['/api/catalog/items/2?x=1', '/api/catalog', '/bare/thing', '/bare', '/bare?q=1']) {
    const res = await request(gw.url + path)
    urls.push((await res.body.json() as Echo).url)
  }
  t.same(urls, ['/catalog/items/2?x=1', '/catalog', '/thing', '/', '/?q=1'])
})

t.test('dot segments are resolved before matching, and the resolved path is forwarded', async (t) => {
  const publicOrigin = await startUpstream(t)
  const adminOrigin = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: public
    prefix: /public
    upstream: ${publicOrigin.url}
  - id: admin
    prefix: /admin
    upstream: ${adminOrigin.url}
`)
  // A Client sends the path as written; request(url) would resolve the dots on the client side.
  const client = new Client(gw.url)
  t.teardown(() => client.close())
  for (const path of ['/public/../admin/users', '/public/%2e%2e/admin/users', '/public/.%2E/admin/users', '/public/./x/../../admin/users']) {
    const res = await client.request({ method: 'GET', path })
    t.equal((await res.body.json() as Echo).url, '/admin/users', path)
  }
  t.equal(publicOrigin.received.length, 0, 'never matched on one form and forwarded in another')
  t.equal(adminOrigin.received.length, 4)

  for (const path of ['/..', '/public/../../etc/passwd', '/%2e%2e/x']) {
    const res = await client.request({ method: 'GET', path })
    t.equal(res.statusCode, 400, path)
    t.match(await res.body.json(), { code: 'BW_ERR_REQUEST_BAD_PATH' })
  }
})

t.test('X-Forwarded-* and X-Request-Id', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: echo
    prefix: /
    upstream: ${origin.url}
    headers: {x-tenant: acme}
`)
  const forged = await request(`${gw.url}/x`, {
    headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https', 'x-request-id': 'abc-123' }
  })
  const echo = await forged.body.json() as Echo
  t.equal(echo.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'the client address is appended')
  t.equal(echo.headers['x-forwarded-host'], `127.0.0.1:${gw.port}`, 'a client cannot forge X-Forwarded-Host')
  t.equal(echo.headers['x-forwarded-proto'], 'http', 'a client cannot forge X-Forwarded-Proto')
  t.equal(echo.headers['x-request-id'], 'abc-123', 'the client request id goes upstream')
  t.equal(forged.headers['x-request-id'], 'abc-123', 'and is echoed back')
  t.equal(echo.headers.host, `127.0.0.1:${origin.port}`, 'Host names the upstream')
  t.equal(echo.headers['x-tenant'], 'acme', 'configured headers are added')

  const fresh = await request(`${gw.url}/x`)
  const freshEcho = await fresh.body.json() as Echo
  t.match(fresh.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'generated when the client sends none')
  t.equal(freshEcho.headers['x-request-id'], fresh.headers['x-request-id'])

  const hostile = await request(`${gw.url}/x`, { headers: { 'x-request-id': 'x'.repeat(300) } })
  t.match(hostile.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'an oversized id is replaced')
  await hostile.body.dump()
})

t.test('trustProxy keeps X-Forwarded-Host and -Proto from the proxy in front', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
server:
  trustProxy: true
routes:
  - id: echo
    prefix: /
    upstream: ${origin.url}
`)
  const res = await request(`${gw.url}/x`, { headers: { 'x-forwarded-host': 'api.example.com', 'x-forwarded-proto': 'https' } })
  const echo = await res.body.json() as Echo
  t.equal(echo.headers['x-forwarded-host'], 'api.example.com')
  t.equal(echo.headers['x-forwarded-proto'], 'https')
})

t.test('hop-by-hop headers are stripped both ways', async (t) => {
  const origin = await startUpstream(t, (_req, res) => {
    res.setHeader('x-upstream-private', 'secret')
    res.setHeader('connection', 'x-upstream-private')
    res.setHeader('keep-alive', 'timeout=5')
    res.setHeader('x-kept', 'yes')
    res.end('ok')
  })
  const gw = await startGateway(t, `
routes:
  - id: echo
    prefix: /
    upstream: ${origin.url}
`)
  // Raw, because client libraries manage Connection themselves.
  const res = await rawRequest(gw.port, 'GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close, x-client-private\r\n' +
    'X-Client-Private: 1\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-End-To-End: kept\r\n\r\n')
  t.equal(res.status, 200)
  t.equal(res.headers['x-kept'], 'yes')
  t.equal(res.headers['x-upstream-private'], undefined, 'a field the upstream named in Connection is dropped')
  t.equal(res.headers['keep-alive'], undefined, "the upstream's Keep-Alive is not relayed")
  const seen = origin.received[0]?.headers ?? {}
  t.equal(seen['x-client-private'], undefined, 'a field the client named in Connection is dropped')
  t.equal(seen.te, undefined)
  t.equal(seen['proxy-connection'], undefined)
  t.equal(seen['x-end-to-end'], 'kept')
})

t.test('request bodies are forwarded byte for byte, chunked or with a length', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: echo
    prefix: /
    upstream: ${origin.url}
`)
  const payload = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251))
  await (await request(`${gw.url}/fixed`, { method: 'PUT', body: payload })).body.dump()
  await (await request(`${gw.url}/chunked`, { method: 'POST', body: Readable.from([payload.subarray(0, 1000), payload.subarray(1000)]) })).body.dump()
  t.equal(origin.received.length, 2)
  t.ok(origin.received[0]?.body.equals(payload))
  t.ok(origin.received[1]?.body.equals(payload))
  t.equal(origin.received[1]?.headers['transfer-encoding'], 'chunked')
})

t.test('upstream answers pass through: status, headers, HEAD and empty bodies', async (t) => {
  const origin = await startUpstream(t, (req, res) => {
    if (req.url === '/created') {
      res.writeHead(201, { location: '/things/1', 'set-cookie': ['a=1', 'b=2'] })
      res.end('made')
    } else if (req.url === '/empty') {
      res.writeHead(204)
      res.end()
    } else {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' })
      res.end(req.method === 'HEAD' ? undefined : 'hello')
    }
  })
  const gw = await startGateway(t, `
routes:
  - id: echo
    prefix: /
    upstream: ${origin.url}
`)
  const created = await request(`${gw.url}/created`, { method: 'POST' })
  t.equal(created.statusCode, 201)
  t.equal(created.headers.location, '/things/1')
  t.same(created.headers['set-cookie'], ['a=1', 'b=2'])
  t.equal(await created.body.text(), 'made')

  const empty = await request(`${gw.url}/empty`)
  t.equal(empty.statusCode, 204)
  t.equal(await empty.body.text(), '')

  const head = await request(`${gw.url}/text`, { method: 'HEAD' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-length'], '5')
  t.equal(await head.body.text(), '')
})

t.test('round robin over a list of upstreams', async (t) => {
  const a = await startUpstream(t)
  const b = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: pair
    prefix: /
    upstream: [${a.url}, ${b.url}]
`)
  for (let i = 0; i < 6; i++) await (await request(`${gw.url}/n${i}`)).body.dump()
  t.same(a.received.map((r) => r.url), ['/n0', '/n2', '/n4'])
  t.same(b.received.map((r) => r.url), ['/n1', '/n3', '/n5'])
})

t.test('the reserved /actuator prefix is never proxied, even by a catch-all route or through dot segments', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
management:
  port: 0
routes:
  - id: everything
    prefix: /
    upstream: ${origin.url}
`)
  const client = new Client(gw.url)
  t.teardown(() => client.close())
  for (const path of ['/actuator', '/actuator/health', '/x/../actuator/info', '/a/%2e%2e/actuator']) {
    const res = await client.request({ method: 'GET', path })
    t.equal(res.statusCode, 404, path)
    t.match(await res.body.json(), { code: 'BW_ERR_ROUTE_NOT_FOUND' })
  }
  const other = await client.request({ method: 'GET', path: '/actuatorx' })
  t.equal(other.statusCode, 200, 'a path that only starts with the same letters is proxied')
  await other.body.dump()
  t.same(origin.received.map((r) => r.url), ['/actuatorx'])
})

t.test('a client that leaves before any answer is recorded once, as 499 (nginx\'s), in the metrics and the access log', async (t) => {
  const arrived: Array<() => void> = []
  const origin = await startUpstream(t, (_req, res) => { arrived.push(() => { res.writeHead(200); res.end('late') }) })
  t.teardown(() => { for (const answer of arrived) answer() })
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  const gw = await startGateway(t, `
routes:
  - id: slow
    prefix: /
    upstream: ${origin.url}
`, { logger })
  await t.rejects(request(`${gw.url}/wait`, { signal: AbortSignal.timeout(200) }))
  const accessLines = (): Array<Record<string, unknown>> => lines.filter((line) => line.msg === 'request' && line.url === '/wait')
  await waitUntil(() => accessLines().length === 1, 'the access line of the request the client left', 5_000)
  t.match(accessLines()[0], { route: 'slow', status: 499 })
  const scrape = parsePrometheus(await (await request(`${gw.url}/actuator/prometheus`)).body.text())
  t.equal(valueOf(scrape, 'http_server_requests_seconds_count', { uri: '/', status: '499', outcome: 'CLIENT_ERROR' }), 1)
})
