// A real origin for tests: an HTTP server on an ephemeral loopback port that records what it receives.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'

export interface ReceivedRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage['headers']
  readonly rawHeaders: readonly string[]
  readonly bodyBytes: number
  readonly body: Buffer
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void

export interface Upstream {
  readonly url: string
  readonly port: number
  readonly server: Server
  /** Every request the origin received, in order. */
  readonly received: ReceivedRequest[]
  /** Replaces the handler: scripts the next faults. */
  handle: (handler: UpstreamHandler) => void
  close: () => Promise<void>
}

/** Echoes the request as JSON: what the gateway forwarded. */
export const echoHandler: UpstreamHandler = (req, res, body) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') }))
}

interface TapLike { teardown: (fn: () => unknown) => void }

/**
 * Starts an origin; it is closed in `t.teardown`. With `buffer: false` bodies are counted, not kept,
 * so a 100 MB upload does not sit in the test's own memory.
 */
export async function startUpstream (t: TapLike, handler: UpstreamHandler = echoHandler, options: { buffer?: boolean } = {}): Promise<Upstream> {
  const keep = options.buffer ?? true
  let current = handler
  const received: ReceivedRequest[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    let bytes = 0
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (keep) chunks.push(chunk)
    })
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: bytes, body })
      current(req, res, body)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const upstream: Upstream = {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    received,
    handle: (next) => { current = next },
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
  t.teardown(() => upstream.close())
  return upstream
}
