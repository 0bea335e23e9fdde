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
