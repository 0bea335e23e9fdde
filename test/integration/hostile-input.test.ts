// Hostile input (RFC 9112): refused with 400 as problem+json, never forwarded, and no error answer leaks how the gateway is built.
import t, { type Test } from 'tap'
import { startGateway, type Gateway } from '../helpers/gateway.js'
import { countArrivals, decodedBody, LEAK } from '../helpers/problem.js'
import { rawRequest, type RawResponse } from '../helpers/raw-http.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

interface Setup { gw: Gateway, origin: Upstream, arrivals: () => number }

async function setup (t: Test): Promise<Setup> {
  const origin = await startUpstream(t)
  const arrivals = countArrivals(origin)
  const gw = await startGateway(t, `
routes:
  - id: all
    prefix: /
    upstream: ${origin.url}
`)
  return { gw, origin, arrivals }
}

/** Asserts `res` is the gateway's own problem answer with this status and code; returns the problem. */
function assertProblem (t: Test, res: RawResponse, status: number, code: string, label: string): Record<string, unknown> {
  t.equal(res.status, status, `${label}: status`)
  t.match(res.headers['content-type'], /^application\/problem\+json/, `${label}: problem+json`)
  const body = decodedBody(res)
  t.notMatch(body, LEAK, `${label}: no stack trace or path`)
  let problem: Record<string, unknown> = {}
  try {
    problem = JSON.parse(body) as Record<string, unknown>
  } catch {
    t.fail(`${label}: the body is not JSON: ${JSON.stringify(res.text)}`)
  }
  t.equal(problem.status, status, `${label}: problem status`)
  t.equal(problem.code, code, `${label}: problem code`)
  return problem
}

const CHUNKED_ABC = '3\r\nabc\r\n0\r\n\r\n'

t.test('Content-Length together with Transfer-Encoding is refused (RFC 9112 section 6.3)', async (t) => {
  const { gw, arrivals } = await setup(t)
  const requests = {
    'CL then TE': `POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_ABC}`,
    'TE then CL': `POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n${CHUNKED_ABC}`
  }
  for (const [label, text] of Object.entries(requests)) {
    assertProblem(t, await rawRequest(gw.port, text), 400, 'BW_ERR_REQUEST_MALFORMED', label)
  }
  t.equal(arrivals(), 0, 'nothing reached the origin')
})

t.test('conflicting Content-Lengths are refused (RFC 9112 section 6.3)', async (t) => {
  const { gw, arrivals } = await setup(t)
  const requests = {
    'two fields': 'POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
    'one list': 'POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 3, 4\r\n\r\nabcd'
  }
  for (const [label, text] of Object.entries(requests)) {
    assertProblem(t, await rawRequest(gw.port, text), 400, 'BW_ERR_REQUEST_MALFORMED', label)
  }
  t.equal(arrivals(), 0, 'nothing reached the origin')
})

t.test('unknown or disguised transfer codings are refused (RFC 9112 sections 6.1, 7)', async (t) => {
  const { gw, arrivals } = await setup(t)
  const codings = {
    'gzip alone': ['gzip'],
    'a look-alike': ['xchunked'],
    'chunked not last': ['chunked, identity'],
    'chunked twice in a list': ['chunked, chunked'],
    // llhttp takes this one: chunked is last, so the framing is known, but the gateway cannot undo gzip.
    'an unknown coding before chunked': ['gzip, chunked'],
    'identity (no longer a transfer coding) in its own field': ['identity', 'chunked'],
    'chunked in two fields': ['chunked', 'chunked'],
    'chunked, then gzip in a second field': ['chunked', 'gzip'],
    'a vertical tab after chunked': ['chunked\x0b'],
    'a space before the colon': null
  }
  for (const [label, values] of Object.entries(codings)) {
    const fields = values === null
      ? 'Transfer-Encoding : chunked\r\n'
      : values.map((value) => `Transfer-Encoding: ${value}\r\n`).join('')
    const res = await rawRequest(gw.port, `POST /x HTTP/1.1\r\nHost: gw\r\n${fields}Connection: close\r\n\r\n${CHUNKED_ABC}`)
    assertProblem(t, res, 400, 'BW_ERR_REQUEST_MALFORMED', label)
  }
  t.equal(arrivals(), 0, 'nothing reached the origin')
})

t.test('Transfer-Encoding on an HTTP/1.0 request is faulty framing (RFC 9112 section 6.1)', async (t) => {
  const { gw, arrivals } = await setup(t)
  const res = await rawRequest(gw.port, `POST /x HTTP/1.0\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_ABC}`)
  assertProblem(t, res, 400, 'BW_ERR_REQUEST_MALFORMED', 'HTTP/1.0 with chunked')
  t.equal(arrivals(), 0, 'nothing reached the origin')
})

t.test('whitespace around chunked is optional whitespace, not a disguise: the body is re-framed upstream', async (t) => {
  // RFC 9110 section 5.5: leading and trailing SP/HTAB are not part of a field value; coding names are case-insensitive.
  const { gw, origin } = await setup(t)
  for (const value of ['\tchunked', ' chunked ', 'Chunked']) {
    const res = await rawRequest(gw.port, `POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: ${value}\r\nConnection: close\r\n\r\n${CHUNKED_ABC}`)
    t.equal(res.status, 200, JSON.stringify(value))
  }
  t.equal(origin.received.length, 3)
  for (const seen of origin.received) {
    t.equal(seen.body.toString(), 'abc', 'the body arrives decoded')
    t.equal(seen.headers['transfer-encoding'], 'chunked', 'framed anew by the gateway, not copied from the client')
  }
})

t.test('a duplicate Host is refused (RFC 9112 section 3.2)', async (t) => {
  const { gw, arrivals } = await setup(t)
  const res = await rawRequest(gw.port, 'GET /x HTTP/1.1\r\nHost: gw\r\nHost: evil.example\r\nX-Request-Id: dup-host\r\n\r\n')
  const problem = assertProblem(t, res, 400, 'BW_ERR_REQUEST_MALFORMED', 'two Host fields')
  t.equal(problem.requestId, 'dup-host')
  t.equal(res.headers['x-request-id'], 'dup-host')
  t.equal(arrivals(), 0, 'nothing reached the origin')
})

t.test('an HTTP/1.1 request without Host is refused (RFC 9112 section 3.2)', async (t) => {
  const { gw, arrivals } = await setup(t)
  const res = await rawRequest(gw.port, 'GET /x HTTP/1.1\r\nX-Request-Id: no-host\r\n\r\n')
  const problem = assertProblem(t, res, 400, 'BW_ERR_REQUEST_MALFORMED', 'no Host')
  t.equal(problem.requestId, 'no-host')
  t.equal(arrivals(), 0, 'nothing reached the origin')
})

t.test('an HTTP/1.0 request without Host is accepted', async (t) => {
  const { gw, origin } = await setup(t)
  const res = await rawRequest(gw.port, 'GET /old HTTP/1.0\r\n\r\n')
  t.equal(res.status, 200)
  t.equal(origin.received.length, 1)
  t.equal(origin.received[0]?.url, '/old')
  t.equal(origin.received[0]?.headers.host, `127.0.0.1:${origin.port}`, 'Host names the upstream')
})

t.test('a Host that is not host[:port] is refused and never forwarded (RFC 9112 section 3.2, RFC 9110 section 7.2)', async (t) => {
  const { gw, arrivals } = await setup(t)
  const hosts = {
    'a list of two hosts': 'a.example, b.example',
    'two hosts without a space': 'a.example,b.example',
    'a host with a path': 'a.example/x',
    'a host with userinfo': 'user@a.example',
    'a host with a query': 'a.example?x',
    'a space inside': 'a .example',
    'two ports': 'a.example:80:81',
    'a port that is not a number': 'a.example:http',
    'an unclosed IPv6 literal': '[::1',
    'a bracketed literal with a letter no IPv6 address has': '[::g]',
    'an IPv6 literal with two ::': '[1::2::3]',
    'an IPv6 literal without brackets': '::1'
  }
  for (const [label, host] of Object.entries(hosts)) {
    const res = await rawRequest(gw.port, `GET /x HTTP/1.1\r\nHost: ${host}\r\nX-Request-Id: bad-host\r\n\r\n`)
    const problem = assertProblem(t, res, 400, 'BW_ERR_REQUEST_MALFORMED', label)
    t.equal(problem.requestId, 'bad-host', `${label}: requestId`)
  }
  t.equal(arrivals(), 0, 'nothing reached the origin')
})

t.test('every form of uri-host [":" port] is accepted (RFC 3986 section 3.2.2)', async (t) => {
  const { gw, origin } = await setup(t)
  const hosts = ['gw', 'API.Example.com:8080', '127.0.0.1:80', '[::1]:8080', '[2001:db8::7]', '[v1.fe80::a+en1]', 'xn--bcher-kva.example', 'a%2Db.example', 'a.example:', '']
  for (const host of hosts) {
    const res = await rawRequest(gw.port, `GET /ok HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    t.equal(res.status, 200, JSON.stringify(host))
  }
  t.equal(origin.received.length, hosts.length, 'each one forwarded')
})

t.test('an Upgrade request with a Host list is refused before any route or upstream sees it', async (t) => {
  const origin = await startUpstream(t)
  let connections = 0
  origin.server.on('connection', () => { connections++ })
  const gw = await startGateway(t, `
routes:
  - id: live
    prefix: /
    websocket: true
    upstream: ${origin.url}
`)
  const res = await rawRequest(gw.port, 'GET /socket HTTP/1.1\r\nHost: a.example, b.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Request-Id: bad-upgrade\r\n\r\n')
  const problem = assertProblem(t, res, 400, 'BW_ERR_REQUEST_MALFORMED', 'Upgrade with two hosts')
  t.equal(problem.requestId, 'bad-upgrade')
  t.equal(connections, 0, 'the gateway never connected to the origin')
})

t.test('X-Original-URL and X-Rewrite-URL never reach the origin, so a cached answer cannot be steered by them', async (t) => {
  // An origin that routes by them, as IIS, Symfony and Zend do.
  const origin = await startUpstream(t, (req, res) => {
    const routed = req.headers['x-original-url'] ?? req.headers['x-rewrite-url'] ?? req.url
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' })
    res.end(`page ${String(routed)}`)
  })
  const gw = await startGateway(t, `
routes:
  - id: site
    prefix: /
    upstream: ${origin.url}
    cache: {}
`)
  for (const name of ['X-Original-URL', 'X-Rewrite-URL']) {
    const path = `/home-${name.toLowerCase()}`
    const steered = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nHost: gw\r\n${name}: /admin\r\nConnection: close\r\n\r\n`)
    t.equal(steered.status, 200)
    t.equal(decodedBody(steered), `page ${path}`, `${name}: the origin routed by the target`)
    const later = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
    t.equal(later.headers['x-cache'], 'HIT')
    t.equal(decodedBody(later), `page ${path}`, `${name}: the next client gets the page of the URL it asked for`)
  }
  t.equal(origin.received.length, 2)
  for (const seen of origin.received) {
    t.equal(seen.headers['x-original-url'], undefined)
    t.equal(seen.headers['x-rewrite-url'], undefined)
  }
})

t.test('a target with a malformed percent-encoding is refused as a problem', async (t) => {
  const { gw, arrivals } = await setup(t)
  for (const path of ['/x%zz', '/%', '/a%2']) {
    const res = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
    assertProblem(t, res, 400, 'BW_ERR_REQUEST_MALFORMED', path)
  }
  t.equal(arrivals(), 0, 'nothing reached the origin')
})

t.test('error answers never carry a stack trace or a path', async (t) => {
  const { gw, arrivals } = await setup(t)
  const requests = [
    'G@T /x HTTP/1.1\r\nHost: gw\r\n\r\n',
    'GET /x HTTP/1.2\r\nHost: gw\r\n\r\n',
    'GET /x HTTP/1.1\r\nHost: gw\r\nX-A: b\x00c\r\n\r\n',
    'GET /x HTTP/1.1\r\nHost: gw\r\nX-A: b\r\n folded\r\n\r\n',
    'GET /x HTTP/1.1\nHost: gw\n\n',
    'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    'GET http://evil.example/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n',
    'GET /../../etc/passwd HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n',
    'GET /x%zz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n',
    `GET /${'a'.repeat(17 * 1024)} HTTP/1.1\r\nHost: gw\r\n\r\n`,
    'POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
    'POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'
  ]
  for (const text of requests) {
    const res = await rawRequest(gw.port, text)
    const label = JSON.stringify(text.slice(0, 40))
    t.ok(res.status >= 400 && res.status < 500, `${label}: a 4xx (got ${res.status})`)
    t.notMatch(res.text, LEAK, `${label}: no stack trace or path`)
  }
  t.equal(arrivals(), 0, 'nothing reached the origin')
})
