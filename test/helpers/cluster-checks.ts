// Checks of a Redis Cluster under test: slot counts, redis-cli --cluster check, every key read back; and keys written to it.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { Test } from 'tap'
import { parseClusterNodes, slotsOf } from '../../src/autoscaler/cluster-nodes.js'
import { createRedisClient, readyWithin, type RedisConnection } from '../../src/redis/index.js'
import type { RedisServer } from './redis.js'

const execFileAsync = promisify(execFile)

/** A Cluster client of the gateway's kind, ready; closed in `t.teardown`. */
export async function clusterClient (t: Test, nodes: readonly string[]): Promise<RedisConnection & { kind: 'cluster' }> {
  const connection = createRedisClient({ cluster: nodes, keyPrefix: '', connectTimeoutMs: 2000, commandTimeoutMs: 5000 })
  t.teardown(connection.close)
  if (connection.kind !== 'cluster') throw new Error('expected a cluster connection')
  await readyWithin(connection, 5000)
  return connection
}

export const addressOf = (server: RedisServer): string => `127.0.0.1:${server.port}`

/** Slot counts per master address (slotless masters included), as the cluster looks from `server`. */
export async function slotCounts (server: RedisServer): Promise<Record<string, number>> {
  const nodes = parseClusterNodes(await server.cli('cluster', 'nodes'))
  return Object.fromEntries(nodes.filter((node) => node.role === 'master').map((node) => [node.address, slotsOf(node.slots).length]))
}

/** Slots `server` holds open (MIGRATING or IMPORTING), as it says itself. */
export async function openSlotsOf (server: RedisServer): Promise<number> {
  const own = parseClusterNodes(await server.cli('cluster', 'nodes')).find((node) => node.flags.includes('myself'))
  return (own?.migrating.length ?? 0) + (own?.importing.length ?? 0)
}

/** `redis-cli --cluster check` exits 0: every slot covered, none open, all nodes agree. */
export async function clusterChecksClean (t: Test, at: string): Promise<void> {
  const { stdout } = await execFileAsync('redis-cli', ['--cluster', 'check', at], { timeout: 20_000 })
  t.match(stdout, /\[OK\] All 16384 slots covered/, `redis-cli --cluster check ${at} is clean`)
  t.notMatch(stdout, /\[WARNING\]|\[ERR\]/, 'no open slot, no warning')
}

/** Writes `k:<i>` = `v:<i>` for i in [0, count), a thousand at a time. */
export async function writeKeys (t: Test, nodes: readonly string[], count: number): Promise<void> {
  const connection = await clusterClient(t, nodes)
  for (let start = 0; start < count; start += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, count - start) }, async (_, i) => connection.client.set(`k:${start + i}`, `v:${start + i}`)))
  }
  await connection.close()
}

/** Every key `k:<i>` reads `v:<i>` through a fresh Cluster client (a fresh slot map). */
export async function everyKeyIntact (t: Test, nodes: readonly string[], count: number, what: string): Promise<void> {
  const connection = await clusterClient(t, nodes)
  let wrong = 0
  for (let start = 0; start < count; start += 1000) {
    const values = await Promise.all(Array.from({ length: Math.min(1000, count - start) }, async (_, i) => connection.client.get(`k:${start + i}`)))
    wrong += values.filter((value, i) => value !== `v:${start + i}`).length
  }
  t.equal(wrong, 0, `${what}: all ${count} keys read back with their values`)
  await connection.close()
}
