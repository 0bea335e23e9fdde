// The autoscale bench's data set: small string keys written to and read back from a Redis Cluster in pipelined batches, through the gateway's own Cluster client.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** Commands in flight at once while writing or reading back: enough to pipeline, few enough to stay under a timeout. */
const BATCH = 2_000
/** A read-back GET pending this long has failed, whatever the client's own timeout says (ms). */
const READ_BOUND_MS = 15_000

/** The i-th key of the data set and its value. */
export const keyOf = (/** @type {number} */ i) => `key:${i}`
export const valueOf = (/** @type {number} */ i) => `value:${i}`

/**
 * @typedef {object} ClusterClient  the subset of ioredis' Cluster the bench uses
 * @property {(key: string) => Promise<string | null>} get
 * @property {(key: string, value: string) => Promise<unknown>} set
 */

/**
 * @typedef {object} OpenedClient
 * @property {ClusterClient} client
 * @property {() => Promise<void>} close
 */

/**
 * Opens the gateway's Cluster client (createRedisClient from `gatewayDir`'s dist/: no offline queue, no retries) and
 * waits until it is ready.
 * @param {string} gatewayDir
 * @param {readonly string[]} seeds  `host:port` of nodes
 * @param {{ connectTimeoutMs: number, commandTimeoutMs: number }} timeouts
 * @returns {Promise<OpenedClient>}
 */
export async function openClusterClient (gatewayDir, seeds, { connectTimeoutMs, commandTimeoutMs }) {
  const redis = await import(pathToFileURL(join(gatewayDir, 'dist', 'redis', 'index.js')).href)
  const connection = redis.createRedisClient({ cluster: seeds.map((seed) => `redis://${seed}`), keyPrefix: '', connectTimeoutMs, commandTimeoutMs })
  await redis.readyWithin(connection, connectTimeoutMs * 5)
  if (connection.client.status !== 'ready') {
    await connection.close()
    throw new Error(`the Cluster client did not get ready within ${connectTimeoutMs * 5} ms (status ${connection.client.status})`)
  }
  return { client: connection.client, close: connection.close }
}

/**
 * Writes keys 0..count-1, BATCH commands in flight at a time.
 * @param {ClusterClient} client
 * @param {number} count
 */
export async function writeKeys (client, count) {
  for (let start = 0; start < count; start += BATCH) {
    const writes = []
    for (let i = start; i < Math.min(start + BATCH, count); i++) writes.push(client.set(keyOf(i), valueOf(i)))
    await Promise.all(writes)
  }
}

/**
 * Reads every pair back, BATCH GETs in flight at a time, and counts those missing, wrong or failed.
 * @param {ClusterClient} client
 * @param {number} count
 * @param {(i: number) => [key: string, value: string]} pair  the i-th key and the value it must hold
 * @returns {Promise<{ checked: number, missing: number, wrong: number, failed: number, first: string | null }>}
 */
export async function verifyPairs (client, count, pair) {
  let missing = 0
  let wrong = 0
  let failed = 0
  /** @type {string | null} */
  let first = null
  for (let start = 0; start < count; start += BATCH) {
    const reads = []
    for (let i = start; i < Math.min(start + BATCH, count); i++) {
      const [key, value] = pair(i)
      reads.push(within(client.get(key), READ_BOUND_MS).then((got) => {
        if (got === null) missing++
        else if (got !== value) wrong++
        else return
        first ??= `${key}: ${got === null ? 'missing' : `holds ${JSON.stringify(got)}`}`
      }, (/** @type {Error} */ err) => {
        failed++
        first ??= `${key}: ${err.message}`
      }))
    }
    await Promise.all(reads)
  }
  return { checked: count, missing, wrong, failed, first }
}

/**
 * The command's outcome, or a rejection once it has been pending `ms`. ioredis' commandTimeout applies once a node's
 * connection holds the command, not while the Cluster holds it waiting for a slot map: that wait has no bound of its own.
 * @template T
 * @param {Promise<T>} command
 * @param {number} ms
 * @returns {Promise<T>}
 */
export async function within (command, ms) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer
  const late = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer nor error within ${ms} ms`)), ms)
  })
  try {
    return /** @type {T} */ (await Promise.race([command, late]))
  } finally {
    clearTimeout(timer)
  }
}
