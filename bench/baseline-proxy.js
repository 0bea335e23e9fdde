// The bench baseline: a bare Fastify 5 + @fastify/http-proxy 11 server proxying every request to one upstream, logger off.
import { parseArgs } from 'node:util'
import proxy from '@fastify/http-proxy'
import Fastify from 'fastify'

const { values } = parseArgs({
  options: {
    upstream: { type: 'string', default: 'http://127.0.0.1:8081' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8080' }
  }
})

const app = Fastify({ logger: false })
await app.register(proxy, { upstream: values.upstream })
await app.listen({ host: values.host, port: Number(values.port) })

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
