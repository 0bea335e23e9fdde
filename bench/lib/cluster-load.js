// Child process of the autoscale bench: client load on a Redis Cluster while slots move (GETs of existing keys, SETs of new ones), then a check that every SET is readable.
// Usage: node cluster-load.js '<json LoadSpec>'; prints "ready" once loading, and one JSON line of LoadResult at the end.
// SIGUSR2 stops the load (the move is over); the hard cap stops it anyway.
import { performance } from 'node:perf_hooks'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { keyOf, openClusterClient, valueOf, verifyPairs, within } from './cluster-data.js'

/**
 * @typedef {object} LoadSpec
 * @property {string} gatewayDir  whose dist/ gives the Cluster client and the gateway's default timeouts
 * @property {string[]} seeds  `host:port`
 * @property {number} workers  each runs one command at a time
 * @property {number} keyCount  keys 0..keyCount-1 of the data set exist
 * @property {number} maxSeconds  the hard cap
 * @property {string} tag  makes this run's new keys unique
 */

/**
 * @typedef {object} LoadResult
 * @property {number} seconds
 * @property {number} ops
 * @property {number} gets
 * @property {number} sets
 * @property {number} errors  failed commands and wrong answers, of every kind
 * @property {Record<string, number>} errorKinds  by message
 * @property {number} written  SETs acknowledged
 * @property {{ checked: number, missing: number, wrong: number, failed: number, first: string | null }} verify
 * @property {boolean} capped  stopped by the hard cap, not by the bench
 * @property {{ p50: number, p99: number, max: number }} latencyMs  of the commands, failed ones included
 */

/** SETs get this share of the operations. */
const SET_SHARE = 0.5
/**
 * A command not settled after this long is given up on and counted as an error of its own kind: the client's 100 ms
 * timeout applies once a node's connection has the command, not while the Cluster holds it (waiting for a slot map).
 */
const HUNG_MS = 2_000

async function main () {
  /** @type {LoadSpec} */
  const spec = JSON.parse(String(process.argv[2]))
  const config = await import(pathToFileURL(join(spec.gatewayDir, 'dist', 'config', 'index.js')).href)
  // The gateway's own defaults: a 100 ms command timeout, no offline queue, no retries.
  const timeouts = {
    connectTimeoutMs: config.parseDurationMs(config.DEFAULT_REDIS_CONNECT_TIMEOUT),
    commandTimeoutMs: config.parseDurationMs(config.DEFAULT_REDIS_COMMAND_TIMEOUT)
  }
  const { client, close } = await openClusterClient(spec.gatewayDir, spec.seeds, timeouts)
  // An object, so that the workers' loops see the signal handler's write.
  const state = { running: true, capped: false }
  process.once('SIGUSR2', () => { state.running = false })
  const cap = setTimeout(() => {
    state.capped = true
    state.running = false
  }, spec.maxSeconds * 1000)

  let gets = 0
  let sets = 0
  let errors = 0
  /** @type {Record<string, number>} */
  const errorKinds = {}
  /** @type {string[]} */
  const written = []
  /** @type {number[]} */
  const latencies = []
  let failedFast = false
  const fail = (/** @type {string} */ kind) => {
    errors++
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1
    failedFast = true
  }
  const worker = async (/** @type {number} */ w) => {
    for (let n = 0; state.running; n++) {
      const start = performance.now()
      if (Math.random() < SET_SHARE) {
        const key = `load:${spec.tag}:${w}:${n}`
        sets++
        try {
          await within(client.set(key, key), HUNG_MS)
          written.push(key)
        } catch (err) {
          fail(`SET: ${kindOf(err)}`)
        }
      } else {
        const i = Math.floor(Math.random() * spec.keyCount)
        gets++
        try {
          const got = await within(client.get(keyOf(i)), HUNG_MS)
          if (got !== valueOf(i)) fail(got === null ? 'GET: missing key' : 'GET: wrong value')
        } catch (err) {
          fail(`GET: ${kindOf(err)}`)
        }
      }
      latencies.push(performance.now() - start)
      // A client that is down rejects at once, in a microtask: without a turn of the event loop, eight workers would
      // fail forever without ever seeing SIGUSR2 or a timer.
      if (failedFast) {
        failedFast = false
        await yieldToLoop()
      }
    }
  }
  const started = performance.now()
  const workers = Array.from({ length: spec.workers }, (_, w) => worker(w))
  process.stdout.write('ready\n')
  await Promise.all(workers)
  const seconds = (performance.now() - started) / 1000
  clearTimeout(cap)
  process.stderr.write(`load stopped after ${seconds.toFixed(1)} s: ${gets + sets} ops, ${errors} errors; reading ${written.length} keys back\n`)
  await close()

  // Read back with a patient client: the move is over, and the check must not fail on the 100 ms timeout.
  const reader = await openClusterClient(spec.gatewayDir, spec.seeds, { connectTimeoutMs: timeouts.connectTimeoutMs, commandTimeoutMs: 10_000 })
  const verify = await verifyPairs(reader.client, written.length, (i) => [String(written[i]), String(written[i])])
  await reader.close()
  /** @type {LoadResult} */
  const result = { seconds, ops: gets + sets, gets, sets, errors, errorKinds, written: written.length, verify, capped: state.capped, latencyMs: percentiles(latencies) }
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

/** p50, p99 and max of `values` (ms). */
function percentiles (/** @type {number[]} */ values) {
  const sorted = Float64Array.from(values).sort()
  const at = (/** @type {number} */ q) => sorted.length === 0 ? NaN : Number(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))])
  return { p50: at(0.5), p99: at(0.99), max: sorted.length === 0 ? NaN : Number(sorted[sorted.length - 1]) }
}

/** An error's message without what varies (keys, slots, addresses), so that errors group by kind. */
function kindOf (/** @type {unknown} */ err) {
  const message = err instanceof Error ? err.message : String(err)
  return message.replace(/\d+/g, 'N').replace(/load:\S+|key:\S+/g, 'KEY').slice(0, 100)
}

main().catch((err) => {
  process.stderr.write(`cluster-load failed: ${err instanceof Error ? err.stack : err}\n`)
  process.exit(1)
})
