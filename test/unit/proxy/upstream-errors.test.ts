// undici's errors become the gateway's: the client's detail names the route, the upstream's address stays on the error for the log.
import t from 'tap'
import { gatewayError } from '../../../src/core/index.js'
import { translateUpstreamError } from '../../../src/proxy/index.js'

const UPSTREAM = 'http://10.0.0.7:8081'
const failure = (code: string | undefined): Error => Object.assign(new Error(`failed: ${code ?? 'no code'}`), { code })

t.test('each kind of failure gets its code and a detail naming the route, never the upstream', async (t) => {
  const cases: Array<[string | undefined, string, number, string]> = [
    ['UND_ERR_HEADERS_TIMEOUT', 'BW_ERR_UPSTREAM_TIMEOUT', 504, 'the upstream of route catalog did not answer within 250 ms'],
    ['ECONNREFUSED', 'BW_ERR_UPSTREAM_UNREACHABLE', 502, 'the upstream of route catalog could not be reached (ECONNREFUSED)'],
    ['UND_ERR_INVALID_ARG', 'BW_ERR_UPSTREAM_BAD_RESPONSE', 502, 'the upstream of route catalog sent an answer the gateway could not relay (UND_ERR_INVALID_ARG)'],
    [undefined, 'BW_ERR_UPSTREAM_BAD_RESPONSE', 502, 'the upstream of route catalog sent an answer the gateway could not relay (no code)']
  ]
  for (const [code, expected, status, detail] of cases) {
    const cause = failure(code)
    const err = translateUpstreamError(cause, 'catalog', UPSTREAM, 250)
    t.equal(err.code, expected, String(code))
    t.equal(err.statusCode, status)
    t.equal(err.message, detail)
    t.notMatch(err.message, /10\.0\.0\.7|8081/, 'no address in the detail')
    t.equal(err.upstream, UPSTREAM, 'the address is on the error, for the log')
    t.equal((err as { cause?: unknown }).cause, cause, 'the library error is kept')
  }
})

t.test('an error that already is the gateway\'s passes through unchanged', async (t) => {
  const own = gatewayError('BW_ERR_UPSTREAM_CIRCUIT_OPEN', 'open')
  t.equal(translateUpstreamError(own, 'catalog', UPSTREAM, 250), own)
  t.equal(own.upstream, undefined)
})
