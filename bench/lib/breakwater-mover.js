// Child process of the autoscale bench: one scale-out (addMaster + rebalance) or scale-in (drainMaster) by Breakwater's ClusterAdmin, timed from its first command.
// Usage: node breakwater-mover.js '<json MoveSpec>'; prints one JSON line of MoveResult.
import { performance } from 'node:perf_hooks'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/**
 * @typedef {object} MoveSpec
 * @property {string} gatewayDir  whose dist/ gives ClusterAdmin and connectNode
 * @property {'scale-out' | 'scale-in'} op
 * @property {string[]} seeds  `host:port` of the cluster's masters
 * @property {string} node  the spare to add (scale-out) or the master to drain (scale-in)
 * @property {number} pipeline  keys per MIGRATE
 * @property {number} migrationTimeoutMs
 * @property {boolean} profile  count and time every command by name
 */

/**
 * @typedef {object} MoveResult
 * @property {number} seconds
 * @property {number} slotsMoved  as ClusterAdmin counts them
 * @property {number} keysMoved
 * @property {number} cpuSeconds  the mover process's user + system CPU during the move
 * @property {Record<string, { calls: number, ms: number }>} [commands]  with `profile`: per command, the calls and the summed time awaiting them
 */

async function main () {
  /** @type {MoveSpec} */
  const spec = JSON.parse(String(process.argv[2]))
  const { ClusterAdmin, DEFAULT_RETIRE_DELAY_MS } = await import(pathToFileURL(join(spec.gatewayDir, 'dist', 'autoscaler', 'index.js')).href)
  const { connectNode } = await import(pathToFileURL(join(spec.gatewayDir, 'dist', 'redis', 'index.js')).href)
  /** @type {Record<string, { calls: number, ms: number }>} */
  const commands = {}
  /** @param {string} address */
  const connect = async (address) => {
    const colon = address.lastIndexOf(':')
    // The production connection; its command timeout must outlast MIGRATE's own.
    const connection = await connectNode({
      host: address.slice(0, colon), port: Number(address.slice(colon + 1)), connectTimeoutMs: 2_000, commandTimeoutMs: spec.migrationTimeoutMs + 10_000
    })
    return spec.profile ? profiled(connection, commands) : connection
  }
  const started = performance.now()
  const cpu = process.cpuUsage()
  // The autoscaler's own grace before it resets a drained master (clients refresh their slot maps meanwhile) runs, so
  // the load sees what production clients see; its time is then taken off the figure: it is a wait, not work, and
  // redis-cli's del-node resets at once.
  const admin = new ClusterAdmin({ seeds: spec.seeds, connect, pipeline: spec.pipeline, migrationTimeoutMs: spec.migrationTimeoutMs, retireDelayMs: DEFAULT_RETIRE_DELAY_MS })
  try {
    let summary
    if (spec.op === 'scale-out') {
      await admin.addMaster(spec.node)
      summary = await admin.rebalance()
    } else {
      summary = await admin.drainMaster(spec.node)
    }
    const seconds = (performance.now() - started - (spec.op === 'scale-out' ? 0 : DEFAULT_RETIRE_DELAY_MS)) / 1000
    const { user, system } = process.cpuUsage(cpu)
    /** @type {MoveResult} */
    const result = { seconds, slotsMoved: summary.slotsMoved, keysMoved: summary.keysMoved, cpuSeconds: (user + system) / 1e6, ...(spec.profile ? { commands } : {}) }
    process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    await admin.close()
  }
}

/**
 * The connection with each command counted and timed under its name (CLUSTER's by subcommand).
 * @template {{ call: Function, callBuffer: Function, close: () => Promise<void> }} C
 * @param {C} connection
 * @param {Record<string, { calls: number, ms: number }>} commands
 * @returns {C}
 */
function profiled (connection, commands) {
  /** @param {Function} send */
  const timed = (send) => async (/** @type {string} */ command, /** @type {unknown[]} */ ...args) => {
    const name = command.toUpperCase() === 'CLUSTER' ? `CLUSTER ${String(args[0]).toUpperCase()}${String(args[0]).toUpperCase() === 'SETSLOT' ? ` ${String(args[2]).toUpperCase()}` : ''}` : command.toUpperCase()
    const start = performance.now()
    try {
      return await send(command, ...args)
    } finally {
      const entry = commands[name] ??= { calls: 0, ms: 0 }
      entry.calls++
      entry.ms += performance.now() - start
    }
  }
  return { ...connection, call: timed(connection.call), callBuffer: timed(connection.callBuffer) }
}

main().catch((err) => {
  process.stderr.write(`breakwater-mover failed: ${err instanceof Error ? err.stack : err}\n`)
  process.exit(1)
})
