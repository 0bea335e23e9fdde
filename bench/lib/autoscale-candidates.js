// The autoscale bench's candidates: Breakwater's ClusterAdmin (a child process on the mover CPU) and redis-cli --cluster, each doing one scale-out and one scale-in.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { PROXY_CPU, spawnPinned } from './processes.js'
import { clusterInfo, clusterNodes, plain, waitFor } from './redis-cluster.js'

const MOVER = fileURLToPath(new URL('./breakwater-mover.js', import.meta.url))
/** One mover process's bound: a move of 4,096 slots takes tens of seconds here. */
const MOVE_TIMEOUT_MS = 600_000
/** How long a new node may take to be known to every master (ClusterAdmin's settleTimeoutMs default). */
const JOIN_TIMEOUT_MS = 30_000

/**
 * @typedef {object} MoveContext
 * @property {string} dir  for logs
 * @property {string} seed  `host:port` of a master that stays
 * @property {string[]} masters  `host:port` of the masters before the move
 * @property {{ address: string, id: string }} node  the spare to add (its id once joined is read by the bench), or the master to drain
 * @property {number} pipeline  keys per MIGRATE
 * @property {number} migrationTimeoutMs
 * @property {boolean} profile
 */

/**
 * @typedef {object} Moved
 * @property {number} seconds  from the first command to the end
 * @property {Record<string, unknown>} [detail]  the candidate's own figures (ClusterAdmin's counts, a per-command profile)
 */

/**
 * @typedef {object} AutoscaleCandidate
 * @property {string} id
 * @property {string} label
 * @property {(ctx: MoveContext) => Promise<Moved>} scaleOut
 * @property {(ctx: MoveContext) => Promise<Moved>} scaleIn
 */

/**
 * Breakwater's ClusterAdmin from `gatewayDir`'s dist/, in a fresh node process pinned to the mover CPU; the time is
 * taken inside it, from the ClusterAdmin's construction (it connects lazily) to the end, without node's startup.
 * @param {string} gatewayDir
 * @param {string} [tag]  names a compared checkout
 * @returns {AutoscaleCandidate}
 */
export function breakwater (gatewayDir, tag) {
  const run = async (/** @type {'scale-out' | 'scale-in'} */ op, /** @type {MoveContext} */ ctx) => {
    const spec = { gatewayDir, op, seeds: ctx.masters, node: ctx.node.address, pipeline: ctx.pipeline, migrationTimeoutMs: ctx.migrationTimeoutMs, profile: ctx.profile }
    const { output } = await runPinned(`breakwater-${op}`, process.execPath, [MOVER, JSON.stringify(spec)], join(ctx.dir, `breakwater-${op}.log`))
    const result = JSON.parse(output.split('\n').filter((line) => line.startsWith('{')).pop() ?? 'null')
    const { seconds, ...detail } = result
    return { seconds, detail }
  }
  return {
    id: tag === undefined ? 'breakwater' : `breakwater@${tag}`,
    label: tag === undefined ? 'Breakwater' : `Breakwater [${tag}]`,
    scaleOut: (ctx) => run('scale-out', ctx),
    scaleIn: (ctx) => run('scale-in', ctx)
  }
}

/**
 * redis-cli --cluster, pinned to the mover CPU, as an operator would script it. Scale-out: add-node, then wait (polls
 * every 50 ms, as ClusterAdmin's addMaster does) until every master knows the new node with cluster_state:ok, since
 * rebalance right after add-node sees 3 masters and moves nothing, or fails on a master that has not heard of the
 * new node yet; then rebalance --cluster-use-empty-masters. Scale-in: rebalance with the node's weight 0, then
 * del-node (which FORGETs it everywhere and CLUSTER RESET SOFTs it; redis-cli 7.0 no longer shuts it down).
 * @returns {AutoscaleCandidate}
 */
export function redisCli () {
  const cluster = async (/** @type {MoveContext} */ ctx, /** @type {string} */ name, /** @type {string[]} */ args) => {
    const { output } = await runPinned(`redis-cli-${name}`, 'redis-cli', ['--cluster', ...args], join(ctx.dir, `redis-cli-${name}.log`))
    // rebalance reports a failed slot move on stdout with `***` and may still exit 0.
    const failure = plain(output).split('\n').find((line) => line.startsWith('*** ') && !/No rebalancing needed/.test(line))
    if (failure !== undefined) throw new Error(`redis-cli --cluster ${args.join(' ')}: ${failure}`)
    return plain(output)
  }
  return {
    id: 'redis-cli',
    label: 'redis-cli',
    scaleOut: async (ctx) => {
      const started = performance.now()
      await cluster(ctx, 'add-node', ['add-node', ctx.node.address, ctx.seed])
      const addresses = [...ctx.masters, ctx.node.address]
      await waitFor(`every master to know ${ctx.node.address} with cluster_state:ok`, JOIN_TIMEOUT_MS, async () => {
        const known = await Promise.all(addresses.map((address) => knows(address, ctx.node.address)))
        return known.every(Boolean)
      })
      const joined = performance.now()
      await cluster(ctx, 'rebalance-out', ['rebalance', ctx.seed, '--cluster-use-empty-masters', '--cluster-pipeline', String(ctx.pipeline)])
      const seconds = (performance.now() - started) / 1000
      return { seconds, detail: { joinSeconds: (joined - started) / 1000 } }
    },
    scaleIn: async (ctx) => {
      const started = performance.now()
      await cluster(ctx, 'rebalance-in', ['rebalance', ctx.seed, '--cluster-weight', `${ctx.node.id}=0`, '--cluster-pipeline', String(ctx.pipeline)])
      const emptied = performance.now()
      await cluster(ctx, 'del-node', ['del-node', ctx.seed, ctx.node.id])
      const seconds = (performance.now() - started) / 1000
      return { seconds, detail: { delNodeSeconds: (performance.now() - emptied) / 1000 } }
    }
  }
}

/**
 * Whether the node at `address` says cluster_state:ok and lists `node` with an address (not still in handshake).
 * @param {string} address
 * @param {string} node
 */
async function knows (address, node) {
  const [nodes, info] = await Promise.all([clusterNodes(address), clusterInfo(address)])
  return info.get('cluster_state') === 'ok' && nodes.some((line) => line.address === node && !line.flags.includes('handshake') && !line.flags.includes('noaddr'))
}

/**
 * Runs a command on the mover CPU to its end (bounded), failing on a non-zero exit with its log's tail. Its stdout and
 * stderr go to `logFile` (a new file: the log is appended to), read back once it has exited: a pipe may still hold
 * the last lines when the exit is seen.
 * @param {string} name
 * @param {string} command
 * @param {string[]} args
 * @param {string} logFile
 */
async function runPinned (name, command, args, logFile) {
  const proc = spawnPinned(name, PROXY_CPU, command, args, { logFile, stdout: 'log' })
  /** @type {NodeJS.Timeout | undefined} */
  let timer
  const timeout = new Promise((resolve) => { timer = setTimeout(resolve, MOVE_TIMEOUT_MS, 'timeout') })
  const outcome = await Promise.race([proc.exited, timeout])
  clearTimeout(timer)
  if (outcome === 'timeout') {
    await proc.stop()
    throw new Error(`${name} did not finish within ${MOVE_TIMEOUT_MS / 1000} s`)
  }
  const { code, signal } = /** @type {{ code: number | null, signal: string | null }} */ (outcome)
  if (code !== 0) throw new Error(`${name} exited with ${code ?? signal}:\n${plain(proc.logTail())}`)
  return { output: readFileSync(logFile, 'utf8') }
}
