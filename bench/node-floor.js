// The floor of any Node answer: a bare node:http server answering every request with one fixed 503 problem body, as
// an open breaker does, with no routing, metrics or log. No Node gateway can fast-fail for less CPU than this.
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8080' }
  }
})

const body = JSON.stringify({
  type: 'urn:breakwater:problem:BW_ERR_UPSTREAM_CIRCUIT_OPEN',
  title: 'Circuit breaker open',
  status: 503,
  detail: 'the circuit breaker of route origin is open; retry in 30 s',
  code: 'BW_ERR_UPSTREAM_CIRCUIT_OPEN',
  route: 'origin',
  requestId: '00000000-0000-4000-8000-000000000000'
})
const headers = ['retry-after', '30', 'content-type', 'application/problem+json', 'content-length', String(Buffer.byteLength(body))]

const server = createServer((_req, res) => {
  res.writeHead(503, headers)
  res.end(body)
})
server.listen(Number(values.port), values.host)

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => { server.close(() => process.exit(0)) })
}
