// The floor of any Node answer that needs no upstream: a bare node:http server answering every request with one
// fixed answer, with no routing, metrics or log. No Node gateway can answer that way for less CPU than this.
//   --answer problem  the open breaker's 503 problem (the floor of a fast-fail)
//   --answer cached   a 1 KiB 200 with the headers of a cache hit, from a Buffer held in memory (the floor of a hit)
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8080' },
    answer: { type: 'string', default: 'problem' }
  }
})

const problem = JSON.stringify({
  type: 'urn:breakwater:problem:BW_ERR_UPSTREAM_CIRCUIT_OPEN',
  title: 'Circuit breaker open',
  status: 503,
  detail: 'the circuit breaker of route origin is open; retry in 30 s',
  code: 'BW_ERR_UPSTREAM_CIRCUIT_OPEN',
  route: 'origin',
  requestId: '00000000-0000-4000-8000-000000000000'
})
const problemHeaders = ['retry-after', '30', 'content-type', 'application/problem+json', 'content-length', String(Buffer.byteLength(problem))]

const cached = Buffer.alloc(1024, 'x')
const storedAt = Date.now()
const cachedHeaders = () => [
  'content-type', 'text/plain', 'cache-control', 'max-age=60', 'etag', '"bench"',
  'age', String(Math.floor((Date.now() - storedAt) / 1000)), 'content-length', String(cached.length),
  'x-request-id', randomUUID(), 'x-cache', 'HIT'
]

const listener = values.answer === 'cached'
  ? (/** @type {import('node:http').IncomingMessage} */ _req, /** @type {import('node:http').ServerResponse} */ res) => {
      res.writeHead(200, cachedHeaders())
      res.end(cached)
    }
  : (/** @type {import('node:http').IncomingMessage} */ _req, /** @type {import('node:http').ServerResponse} */ res) => {
      res.writeHead(503, problemHeaders)
      res.end(problem)
    }
const server = createServer(listener)
server.listen(Number(values.port), values.host)

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => { server.close(() => process.exit(0)) })
}
