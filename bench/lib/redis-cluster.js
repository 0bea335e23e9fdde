// Redis Cluster nodes for the autoscale bench: cluster-enabled redis-servers on free loopback ports, joined and read with redis-cli.
import { execFile } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { freePort } from './net.js'
import { LOAD_CPU, spawnPinned } from './processes.js'

const execFileAsync = promisify(execFile)

/** Redis Cluster's hash slots. */
export const CLUSTER_SLOTS = 16_384
/** The Cluster bus listens on port + 10000, so a node's port must leave room for it below 65536. */
const CLUSTER_BUS_OFFSET = 10_000
/** As test/helpers/redis.ts starts cluster nodes; a relative nodes.conf lands in the node's own --dir. */
const CLUSTER_NODE_ARGS = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000']
/** How long a node may take to answer PING, and a new cluster to agree. */
const START_TIMEOUT_MS = 10_000
const CREATE_TIMEOUT_MS = 30_000
/** One redis-cli command's bound; `--cluster check` reads every node. */
const CLI_TIMEOUT_MS = 30_000

/**
 * @typedef {object} ClusterServer
 * @property {string} address  `127.0.0.1:PORT`
 * @property {number} port
 * @property {number} pid
 * @property {() => boolean} alive
 * @property {() => Promise<void>} stop
 */

/**
 * @typedef {object} NodeLine  one line of CLUSTER NODES
 * @property {string} id
 * @property {string} address  `host:port`, the bus port dropped
 * @property {string[]} flags
 * @property {boolean} master
 * @property {number[]} slots  the slots it owns, as this view says
 * @property {number} open  slots it prints as migrating or importing (only on its own `myself` line)
 */

/**
 * Starts one cluster-enabled redis-server, in no cluster yet, on a free port whose bus port is free too; waits for PING.
 * @param {{ dir: string, redisServer: string, cpu?: number }} options
 * @returns {Promise<ClusterServer>}
 */
export async function startClusterServer ({ dir, redisServer, cpu = LOAD_CPU }) {
  const port = await clusterPort()
  const root = join(dir, `redis-${port}`)
  mkdirSync(root, { recursive: true })
  const proc = spawnPinned(`redis-server:${port}`, cpu, redisServer, [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', root, '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--loglevel', 'warning', ...CLUSTER_NODE_ARGS
  ], { logFile: join(root, 'redis.log'), stdout: 'log' })
  const address = `127.0.0.1:${port}`
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline && proc.alive()) {
    if (await cli(address, 'PING').catch(() => '') === 'PONG') {
      return { address, port, pid: proc.pid, alive: proc.alive, stop: () => proc.stop() }
    }
    await sleep(20)
  }
  await proc.stop()
  throw new Error(`redis-server on port ${port} did not answer PING within ${START_TIMEOUT_MS} ms:\n${proc.logTail()}`)
}

/**
 * Joins `addresses` as a cluster of masters with no replica and waits until each says cluster_state:ok and knows them all.
 * @param {readonly string[]} addresses
 */
export async function createCluster (addresses) {
  await execFileAsync('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: CREATE_TIMEOUT_MS })
  await waitFor(`a cluster of ${addresses.join(', ')} to reach cluster_state:ok`, CREATE_TIMEOUT_MS, async () => {
    const views = await Promise.all(addresses.map(async (address) => [await clusterInfo(address), await clusterNodes(address)]))
    return views.every(([info, nodes]) => info.get('cluster_state') === 'ok' && nodes.length === addresses.length)
  })
}

/**
 * One redis-cli command against a node; resolves its trimmed stdout.
 * @param {string} address
 * @param {...string} args
 */
export async function cli (address, ...args) {
  const [host, port] = address.split(':')
  const { stdout } = await execFileAsync('redis-cli', ['-h', String(host), '-p', String(port), ...args], { timeout: CLI_TIMEOUT_MS })
  return stdout.trim()
}

/**
 * CLUSTER INFO of a node.
 * @param {string} address
 * @returns {Promise<Map<string, string>>}
 */
export async function clusterInfo (address) {
  const text = await cli(address, 'CLUSTER', 'INFO')
  return new Map(text.split('\n').map((line) => line.trim().split(':')).filter((pair) => pair.length === 2).map(([k, v]) => [String(k), String(v)]))
}

/**
 * CLUSTER NODES of a node, parsed.
 * @param {string} address
 * @returns {Promise<NodeLine[]>}
 */
export async function clusterNodes (address) {
  const text = await cli(address, 'CLUSTER', 'NODES')
  return text.split('\n').map((line) => line.trim()).filter((line) => line !== '').map((line) => {
    const fields = line.split(' ')
    const flags = String(fields[2]).split(',')
    /** @type {number[]} */
    const slots = []
    let open = 0
    for (const field of fields.slice(8)) {
      if (field.startsWith('[')) {
        open++
        continue
      }
      const [first, last = first] = field.split('-').map(Number)
      for (let slot = Number(first); slot <= Number(last); slot++) slots.push(slot)
    }
    return { id: String(fields[0]), address: String(fields[1]).split('@')[0] ?? '', flags, master: flags.includes('master'), slots, open }
  })
}

/**
 * INFO commandstats of a node: calls and microseconds of server time by command (`cluster|setslot`, `migrate`...).
 * @param {string} address
 * @returns {Promise<Map<string, { calls: number, usec: number }>>}
 */
export async function commandStats (address) {
  const text = await cli(address, 'INFO', 'commandstats')
  const stats = new Map()
  for (const line of text.split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim())
    if (match !== null) stats.set(String(match[1]), { calls: Number(match[2]), usec: Number(match[3]) })
  }
  return stats
}

/**
 * The owner (node id) of each slot as the node at `address` sees it; '' for an unassigned slot.
 * @param {string} address
 */
export async function slotOwners (address) {
  const owners = new Array(CLUSTER_SLOTS).fill('')
  for (const node of await clusterNodes(address)) for (const slot of node.slots) owners[slot] = node.id
  return owners
}

/**
 * `redis-cli --cluster check`: exits 0 when every node agrees, no slot is open and all 16384 are covered.
 * @param {string} seed
 * @returns {Promise<{ ok: boolean, output: string }>}
 */
export async function clusterCheck (seed) {
  try {
    const { stdout } = await execFileAsync('redis-cli', ['--cluster', 'check', seed], { timeout: CLI_TIMEOUT_MS })
    return { ok: true, output: plain(stdout) }
  } catch (err) {
    const failed = /** @type {{ stdout?: string, message: string }} */ (err)
    return { ok: false, output: plain(failed.stdout ?? failed.message) }
  }
}

/**
 * Polls `condition` every `intervalMs` until it holds; fails after `timeoutMs` naming `what`.
 * @param {string} what
 * @param {number} timeoutMs
 * @param {() => Promise<boolean>} condition
 * @param {number} [intervalMs]
 */
export async function waitFor (what, timeoutMs, condition, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await condition().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/** redis-cli colours its --cluster output even into a pipe. */
export function plain (/** @type {string} */ text) {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '')
}

/** A free loopback port at most 55535 whose bus port (+10000) is free too; bounded attempts. */
async function clusterPort () {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await freePort()
    if (port + CLUSTER_BUS_OFFSET <= 65_535 && port !== 6379 && await bindable(port + CLUSTER_BUS_OFFSET)) return port
  }
  throw new Error('found no free loopback port with a free cluster bus port in 100 attempts')
}

/** Whether 127.0.0.1:`port` can be listened on right now. */
function bindable (/** @type {number} */ port) {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}
