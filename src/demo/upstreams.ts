// Small bundled upstreams for `breakwater start --demo`, so a fresh clone answers through the gateway at once.
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'

export const DEMO_CATALOG_PORT = 9001
export const DEMO_ECHO_PORT = 9002

const ITEMS = [
  { id: 1, name: 'Breakwater mug', price: 12.5 },
  { id: 2, name: 'Harbour map', price: 30 },
  { id: 3, name: 'Tide table', price: 4.99 }
]

/** A catalog answering under /catalog: the list, or one item by id. */
function catalog (): Server {
  return createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://demo').pathname
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'max-age=60' })
      res.end(JSON.stringify(body))
    }
    if (path === '/catalog' || path === '/catalog/items') {
      send(200, { items: ITEMS })
      return
    }
    const item = /^\/catalog\/items\/(\d+)$/.exec(path)
    const found = item === null ? undefined : ITEMS.find((candidate) => candidate.id === Number(item[1]))
    if (found === undefined) send(404, { error: 'not found', path })
    else send(200, found)
  })
}

/** Echoes what it received: method, path, headers and the body's size, to show what the gateway forwards. */
function echo (): Server {
  return createServer((req, res) => {
    let bytes = 0
    req.on('data', (chunk: Buffer) => { bytes += chunk.length })
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes: bytes }, null, 2))
    })
  })
}

export interface DemoUpstreams {
  close: () => Promise<void>
}

export async function startDemoUpstreams (host = '127.0.0.1'): Promise<DemoUpstreams> {
  const servers: Array<[Server, number]> = [[catalog(), DEMO_CATALOG_PORT], [echo(), DEMO_ECHO_PORT]]
  for (const [server, port] of servers) {
    server.listen(port, host)
    await once(server, 'listening')
  }
  return {
    close: async () => {
      await Promise.all(servers.map(async ([server]) => {
        server.closeAllConnections()
        await new Promise((resolve) => server.close(resolve))
      }))
    }
  }
}
