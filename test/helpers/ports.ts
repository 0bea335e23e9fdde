// Loopback ports for the real servers tests start: probed by binding them, then released for the server to take.
import { createServer } from 'node:net'

/** Binds `port` on 127.0.0.1 (0: any) and releases it; resolves the port bound, or null when it was taken. */
export async function probePort (port: number): Promise<number | null> {
  const server = createServer()
  return await new Promise((resolve) => {
    server.once('error', () => resolve(null))
    server.listen(port, '127.0.0.1', () => {
      const bound = (server.address() as { port: number }).port
      server.close(() => resolve(bound))
    })
  })
}

/** A free loopback port, one that `accept` agrees to as well (a Redis Cluster node needs its bus port free too). */
export async function freePort (accept: (port: number) => Promise<boolean> = async () => true): Promise<number> {
  for (let tries = 0; tries < 100; tries++) {
    const port = await probePort(0)
    if (port !== null && await accept(port)) return port
  }
  throw new Error('no free loopback port after 100 tries')
}
