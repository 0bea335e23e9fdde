// The error table: codes, statuses, problem bodies, and the README's list kept in step with them.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { asGatewayError, ERROR_TABLE, gatewayError, isGatewayError, problemFor, problemJson, rawProblemResponse, type ErrorCode } from '../../../src/core/index.js'

const codes = Object.keys(ERROR_TABLE) as ErrorCode[]

t.test('codes are BW_ERR_<AREA>_<WHAT> with an error status', async (t) => {
  for (const code of codes) {
    t.match(code, /^BW_ERR_[A-Z]+_[A-Z_]+$/, code)
    t.ok(ERROR_TABLE[code].status >= 400 && ERROR_TABLE[code].status < 600, `${code} has an error status`)
  }
})

t.test('gatewayError carries code, status, detail and cause', async (t) => {
  const cause = new Error('ECONNREFUSED')
  const err = gatewayError('BW_ERR_UPSTREAM_UNREACHABLE', 'http://a could not be reached', cause)
  t.equal(err.code, 'BW_ERR_UPSTREAM_UNREACHABLE')
  t.equal(err.statusCode, 502)
  t.equal(err.message, 'http://a could not be reached')
  t.equal(err.cause, cause)
  t.ok(isGatewayError(err))
  t.notOk(isGatewayError(Object.assign(new Error('x'), { code: 'ECONNRESET' })))
  t.notOk(isGatewayError(null))
})

t.test('problem bodies follow RFC 9457 with the extension members', async (t) => {
  t.same(problemFor('BW_ERR_UPSTREAM_TIMEOUT', 'slow', { route: 'catalog', requestId: 'r1' }), {
    type: 'urn:breakwater:problem:BW_ERR_UPSTREAM_TIMEOUT',
    title: 'Upstream timed out',
    status: 504,
    detail: 'slow',
    code: 'BW_ERR_UPSTREAM_TIMEOUT',
    route: 'catalog',
    requestId: 'r1'
  })
  t.notOk('route' in problemFor('BW_ERR_ROUTE_NOT_FOUND', 'none'), 'absent members are left out, not null')
})

t.test('a raw problem response is complete HTTP/1.1 that closes the connection', async (t) => {
  const text = rawProblemResponse(problemFor('BW_ERR_REQUEST_MALFORMED', 'bad'))
  const [head = '', body = ''] = text.split('\r\n\r\n')
  t.match(head, /^HTTP\/1\.1 400 Bad Request\r\n/)
  t.match(head, /\r\nContent-Type: application\/problem\+json\r\n/)
  t.match(head, new RegExp(`\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`))
  t.match(head, /\r\nConnection: close$/)
  t.equal(JSON.parse(body).code, 'BW_ERR_REQUEST_MALFORMED')
})

t.test('the README lists every code with its status, and no other', async (t) => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  const listed = new Map([...readme.matchAll(/^\| `(BW_ERR_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]))
  t.same(Object.fromEntries(listed), Object.fromEntries(codes.map((code) => [code, ERROR_TABLE[code].status])))
})

t.test('problemJson is JSON.stringify of problemFor, for every code and any text', async (t) => {
  const texts = ['plain', 'quote " backslash \\ newline \n', '\u0000\u001f é \u2028 😀', '']
  for (const code of codes) {
    for (const [i, detail] of texts.entries()) {
      for (const [j, context] of [{}, { route: 'r' }, { requestId: texts[1] }, { route: texts[2], requestId: 'id' }].entries()) {
        // Labelled by index: a U+2028 in a test's name would split its TAP line.
        t.equal(problemJson(code, detail, context), JSON.stringify(problemFor(code, detail, context)), `${code}, text ${i}, context ${j}`)
      }
    }
  }
})

t.test('asGatewayError keeps our errors, a framework\'s 4xx in a gateway code, anything else as internal', async (t) => {
  const ours = gatewayError('BW_ERR_UPSTREAM_TIMEOUT', 'slow')
  t.equal(asGatewayError(ours), ours)
  t.equal(asGatewayError(Object.assign(new Error('big'), { statusCode: 413 })).code, 'BW_ERR_REQUEST_BODY_TOO_LARGE')
  t.equal(asGatewayError(Object.assign(new Error('bad'), { statusCode: 400 })).code, 'BW_ERR_REQUEST_MALFORMED')
  const internal = asGatewayError(new Error('secret /etc/path'))
  t.equal(internal.code, 'BW_ERR_GATEWAY_INTERNAL')
  t.notMatch(internal.message, /secret/)
})
