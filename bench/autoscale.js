// `npm run bench:autoscale`: times a scale-out and a scale-in of a Redis Cluster by Breakwater's ClusterAdmin against redis-cli --cluster, idle and under client load, in interleaved rounds.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { breakwater, redisCli } from './lib/autoscale-candidates.js'
import { formatReport, formatTable } from './lib/autoscale-report.js'
import { bounded, log } from './lib/cli-args.js'
import { keyOf, openClusterClient, valueOf, verifyPairs, writeKeys } from './lib/cluster-data.js'
import { checkBuilt } from './lib/prereqs.js'
import { installCleanup, LOAD_CPU, spawnPinned, stopAll } from './lib/processes.js'
import { CLUSTER_SLOTS, cli, clusterCheck, clusterNodes, commandStats, createCluster, slotOwners, startClusterServer, waitFor } from './lib/redis-cluster.js'
import { waitForQuiet } from './lib/runner.js'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
const LOAD_SCRIPT = join(BENCH_DIR, 'lib', 'cluster-load.js')

const USAGE = `Usage: npm run bench:autoscale -- [options]

  --rounds N        interleaved rounds, at least 3 for a figure worth quoting (default: 3)
  --keys N          keys written before each run (default: 100000)
  --pipeline N      keys per MIGRATE, for both candidates (default: 100)
  --workers N       concurrent clients of the load (default: 8)
  --mode M          idle, load or both (default: both)
  --quiet-wait S    before each move, wait at most S seconds for other processes to go quiet (default: 60)
  --gateway-dir D   the Breakwater checkout to measure (default: this one); it must be built
  --compare D       also run Breakwater from the built checkout D, as breakwater@NAME (repeatable)
  --profile         count and time each admin command Breakwater sends (adds a little overhead)
  --out FILE        where the report goes too (default: bench/results/autoscale.md)
  --tmp-dir D       where the run's temp dir goes, the redis-servers' nodes.conf with it (default: the OS temp dir);
                    /dev/shm takes the disk's fsync of nodes.conf out of the figures
  --keep            keep the temp dir (redis logs, mover logs)
`

/** MIGRATE's own timeout (ms), ClusterAdmin's default. */
const MIGRATION_TIMEOUT_MS = 5_000
/** The load's hard cap (s): far beyond any move here, so that a hung move cannot load forever. */
const LOAD_MAX_SECONDS = 600
/** Load before the move starts, so that the move meets a client at full speed (ms). */
const LOAD_LEAD_MS = 500
/** How long the load may take to start, and to stop and read its keys back (ms). */
const LOAD_START_TIMEOUT_MS = 15_000
const LOAD_STOP_TIMEOUT_MS = 120_000
/** The data client: patient, it only writes and checks. */
const DATA_TIMEOUTS = { connectTimeoutMs: 2_000, commandTimeoutMs: 10_000 }
/**
 * Commands the movers do not send: the load's, ioredis' slot-map refreshes, and the bench's own INFO. What is left
 * in INFO commandstats across the move is the mover's work, counted by Redis the same way for both candidates.
 */
const NOT_ADMIN = new Set(['get', 'set', 'asking', 'cluster|slots', 'info', 'client|setname', 'client|setinfo', 'ping'])
/** A master's slot count may be this far from an even share (issue 7: within 2%). */
const EVEN_TOLERANCE = 0.02

async function main () {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      keys: { type: 'string', default: '100000' },
      pipeline: { type: 'string', default: '100' },
      workers: { type: 'string', default: '8' },
      mode: { type: 'string', default: 'both' },
      'quiet-wait': { type: 'string', default: '60' },
      'gateway-dir': { type: 'string', default: join(BENCH_DIR, '..') },
      compare: { type: 'string', multiple: true, default: [] },
      profile: { type: 'boolean', default: false },
      out: { type: 'string', default: join(BENCH_DIR, 'results', 'autoscale.md') },
      keep: { type: 'boolean', default: false },
      'tmp-dir': { type: 'string', default: tmpdir() },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(USAGE)
    return
  }
  const options = {
    rounds: bounded(values.rounds, 'rounds', 1, 20),
    keys: bounded(values.keys, 'keys', 1, 10_000_000),
    pipeline: bounded(values.pipeline, 'pipeline', 1, 10_000),
    workers: bounded(values.workers, 'workers', 1, 256),
    quietWaitSec: bounded(values['quiet-wait'], 'quiet-wait', 1, 600),
    profile: values.profile
  }
  if (!['idle', 'load', 'both'].includes(values.mode)) throw new Error(`--mode expects idle, load or both, got ${values.mode}`)
  const modes = values.mode === 'both' ? ['idle', 'load'] : [values.mode]
  if (options.rounds < 3) log(`warning: ${options.rounds} round(s): BENCH.md asks for at least 3 before a figure is quoted`)

  installCleanup(log)
  requireTools()
  const gatewayDir = resolve(values['gateway-dir'])
  const compare = values.compare.map((d) => resolve(d))
  for (const d of [gatewayDir, ...compare]) checkBuilt(d, log)
  const candidates = [redisCli(), breakwater(gatewayDir), ...compare.map((d) => breakwater(d, basename(d)))]
  const scenarios = modes.flatMap((mode) => ['scale-out', 'scale-in'].map((op) => `${op} ${mode === 'idle' ? 'idle' : 'under load'}`))

  const dir = mkdtempSync(join(resolve(values['tmp-dir']), 'breakwater-autoscale-'))
  let removeDir = !values.keep
  process.once('exit', () => { if (removeDir) rmSync(dir, { recursive: true, force: true }) })
  /** @type {import('./lib/autoscale-report.js').Sample[]} */
  const samples = []
  const env = { ...environment(gatewayDir), dir: dirname(dir) }
  mkdirSync(dirname(values.out), { recursive: true })
  // After each round too: a run cut short still leaves the rounds it finished.
  const writeReport = () => writeFileSync(values.out, `${formatReport({ candidates, scenarios, samples, env, options })}\n`)
  let finished = false
  try {
    for (let round = 1; round <= options.rounds; round++) {
      // A B, then B A: neither candidate always meets the machine in the same state.
      const order = round % 2 === 1 ? candidates : [...candidates].reverse()
      for (const mode of modes) {
        for (const candidate of order) {
          log(`round ${round}/${options.rounds}, ${mode}, ${candidate.label}`)
          samples.push(...await runOnce({ candidate, mode, round, dir: join(dir, `round${round}-${mode}-${candidate.id}`), gatewayDir, options }))
        }
      }
      writeReport()
    }
    finished = true
  } finally {
    await stopAll()
    if (!finished) removeDir = false
    if (!removeDir) log(`logs kept in ${dir}`)
  }
  process.stdout.write(`\n${formatTable({ candidates, scenarios, samples, env, options })}\n`)
  writeReport()
  log(`report written to ${values.out}`)
  if (samples.some((s) => s.failures.length > 0)) process.exitCode = 1
}

/**
 * One candidate on a fresh cluster: 3 masters and a spare, the keys written, a scale-out then a scale-in, each
 * checked. A move that fails ends the run (its sample says why); the cluster is stopped either way.
 * @param {{ candidate: import('./lib/autoscale-candidates.js').AutoscaleCandidate, mode: string, round: number, dir: string, gatewayDir: string,
 *   options: { keys: number, pipeline: number, workers: number, quietWaitSec: number, profile: boolean } }} run
 * @returns {Promise<import('./lib/autoscale-report.js').Sample[]>}
 */
async function runOnce ({ candidate, mode, round, dir, gatewayDir, options }) {
  mkdirSync(dir, { recursive: true })
  const redisServer = execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim()
  /** @type {import('./lib/redis-cluster.js').ClusterServer[]} */
  const servers = []
  /** @type {import('./lib/autoscale-report.js').Sample[]} */
  const samples = []
  try {
    // One at a time: a running node holds its port and bus port, so the next pick cannot collide with it.
    for (let i = 0; i < 4; i++) servers.push(await startClusterServer({ dir, redisServer }))
    const [seed, second, third, spare] = servers.map((server) => server.address)
    const masters = [String(seed), String(second), String(third)]
    await createCluster(masters)
    const writer = await openClusterClient(gatewayDir, masters, DATA_TIMEOUTS)
    await writeKeys(writer.client, options.keys).finally(writer.close)
    const written = await totalKeys(masters)
    if (written !== options.keys) throw new Error(`wrote ${options.keys} keys, the masters hold ${written}`)

    const spareId = await cli(String(spare), 'CLUSTER', 'MYID')
    const scenario = (/** @type {string} */ op) => `${op} ${mode === 'idle' ? 'idle' : 'under load'}`
    const base = { seed: String(seed), pipeline: options.pipeline, migrationTimeoutMs: MIGRATION_TIMEOUT_MS, profile: options.profile }
    const move = async (/** @type {'scale-out' | 'scale-in'} */ op, /** @type {string[]} */ before) => {
      const ctx = { ...base, dir, masters: before, node: { address: String(spare), id: spareId } }
      const sample = await measured({ op, mode, round, candidate, ctx, scenario: scenario(op), keys: options.keys, workers: options.workers, quietWaitSec: options.quietWaitSec, gatewayDir })
      samples.push(sample)
      return sample
    }
    const out = await move('scale-out', masters)
    if (Number.isNaN(out.seconds)) return samples
    await move('scale-in', [...masters, String(spare)])
    return samples
  } finally {
    await Promise.all(servers.map((server) => server.stop()))
  }
}

/**
 * One timed move with its checks (and its client load, under load).
 * @param {{ op: 'scale-out' | 'scale-in', mode: string, round: number, scenario: string, keys: number, workers: number, quietWaitSec: number, gatewayDir: string,
 *   candidate: import('./lib/autoscale-candidates.js').AutoscaleCandidate, ctx: import('./lib/autoscale-candidates.js').MoveContext }} m
 * @returns {Promise<import('./lib/autoscale-report.js').Sample>}
 */
async function measured ({ op, mode, round, scenario, keys, workers, quietWaitSec, gatewayDir, candidate, ctx }) {
  const waited = await waitForQuiet(quietWaitSec)
  if (!waited.quiet) log(`  (other work still took ${waited.foreignCpu.toFixed(2)} CPU after ${quietWaitSec} s of waiting)`)
  const before = await slotOwners(ctx.seed)
  const drainedKeys = op === 'scale-in' ? Number(await cli(ctx.node.address, 'DBSIZE')) : 0
  const addresses = [...new Set([...ctx.masters, ctx.node.address])]
  const statsBefore = await Promise.all(addresses.map(commandStats))
  const load = mode === 'load' ? await startLoad({ gatewayDir, seeds: [ctx.seed], workers, keyCount: keys, dir: ctx.dir, tag: `${round}-${op}` }) : null
  /** @type {string[]} */
  const failures = []
  /** @type {import('./lib/autoscale-candidates.js').Moved | null} */
  let moved = null
  try {
    moved = await (op === 'scale-out' ? candidate.scaleOut(ctx) : candidate.scaleIn(ctx))
  } catch (err) {
    failures.push(`the move failed: ${err instanceof Error ? err.message.split('\n').slice(0, 3).join(' ') : err}`)
  }
  let loadResult = null
  if (load !== null) {
    try {
      loadResult = await load.finish()
    } catch (err) {
      failures.push(`the load failed: ${err instanceof Error ? err.message : err}`)
    }
  }
  const statsAfter = await Promise.all(addresses.map(commandStats))
  const after = await slotOwners(ctx.seed)
  const slotsMoved = before.filter((owner, slot) => owner !== after[slot]).length
  const keysMoved = op === 'scale-out' ? Number(await cli(ctx.node.address, 'DBSIZE')) : drainedKeys
  if (moved !== null) failures.push(...await checks(op, ctx, after, gatewayDir, keys))
  if (loadResult !== null) {
    const { missing, wrong, failed, first } = loadResult.verify
    if (missing + wrong + failed > 0) failures.push(`${missing + wrong + failed} of the load's ${loadResult.written} acknowledged SETs unreadable after (first: ${first})`)
    if (loadResult.capped) failures.push(`the load hit its ${LOAD_MAX_SECONDS} s cap`)
  }
  const seconds = moved?.seconds ?? NaN
  log(`  ${scenario}: ${Number.isFinite(seconds) ? seconds.toFixed(2) : 'failed'} s, ${slotsMoved} slots, ${keysMoved} keys` +
    `${loadResult === null ? '' : `, ${loadResult.ops} client ops, ${loadResult.errors} errors`}${failures.length === 0 ? '' : `; FAILED: ${failures.join('; ')}`}`)
  const commands = adminCommands(statsBefore, statsAfter)
  return { round, scenario, candidate: candidate.id, seconds, slotsMoved, keysMoved, load: loadResult, failures, quiet: waited.quiet, commands, detail: moved?.detail }
}

/**
 * What must hold after the move: the masters (4 after a scale-out with the spare among them; 3 after a scale-in,
 * without it), every master within 2% of an even share, no open slot, `--cluster check` clean, every key readable.
 * @param {'scale-out' | 'scale-in'} op
 * @param {import('./lib/autoscale-candidates.js').MoveContext} ctx
 * @param {string[]} owners  slot owners after the move
 * @param {string} gatewayDir
 * @param {number} keys
 * @returns {Promise<string[]>} what failed
 */
async function checks (op, ctx, owners, gatewayDir, keys) {
  const failures = []
  const nodes = await clusterNodes(ctx.seed)
  const masters = nodes.filter((node) => node.master && !node.flags.includes('fail'))
  const expected = op === 'scale-out' ? 4 : 3
  if (masters.length !== expected) failures.push(`${masters.length} masters, expected ${expected}`)
  const hasSpare = nodes.some((node) => node.address === ctx.node.address)
  if (hasSpare !== (op === 'scale-out')) failures.push(`the seed ${hasSpare ? 'still lists' : 'does not list'} ${ctx.node.address}`)
  const share = CLUSTER_SLOTS / expected
  for (const master of masters) {
    const held = owners.filter((owner) => owner === master.id).length
    if (Math.abs(held - share) > EVEN_TOLERANCE * share) failures.push(`${master.address} holds ${held} slots, not within 2% of ${share.toFixed(0)}`)
  }
  for (const master of masters) {
    const own = (await clusterNodes(master.address)).find((node) => node.flags.includes('myself'))
    if ((own?.open ?? 0) > 0) failures.push(`${master.address} has ${own?.open} open slots`)
  }
  const check = await clusterCheck(ctx.seed)
  if (!check.ok) failures.push(`redis-cli --cluster check failed: ${check.output.split('\n').filter((line) => /ERR|WARN/.test(line)).slice(0, 3).join(' ')}`)
  // A fresh client on a master that stays: an old one may refresh its slot map from the drained node, which knows no slot once reset.
  const reader = await openClusterClient(gatewayDir, [ctx.seed], DATA_TIMEOUTS)
  const read = await verifyPairs(reader.client, keys, (i) => [keyOf(i), valueOf(i)]).finally(reader.close)
  if (read.missing + read.wrong + read.failed > 0) failures.push(`${read.missing} keys missing, ${read.wrong} wrong, ${read.failed} unreadable (first: ${read.first})`)
  if (op === 'scale-in') {
    const left = Number(await cli(ctx.node.address, 'DBSIZE'))
    if (left !== 0) failures.push(`the drained node still holds ${left} keys`)
  }
  return failures
}

/**
 * Starts the client load (cluster-load.js on the load CPU) and waits until it runs at full speed.
 * @param {{ gatewayDir: string, seeds: string[], workers: number, keyCount: number, dir: string, tag: string }} spec
 * @returns {Promise<{ finish: () => Promise<import('./lib/cluster-load.js').LoadResult> }>}
 */
async function startLoad ({ gatewayDir, seeds, workers, keyCount, dir, tag }) {
  const logFile = join(dir, `load-${tag}.log`)
  const spec = { gatewayDir, seeds, workers, keyCount, maxSeconds: LOAD_MAX_SECONDS, tag }
  const proc = spawnPinned('cluster-load', LOAD_CPU, process.execPath, [LOAD_SCRIPT, JSON.stringify(spec)], { logFile, stdout: 'log' })
  const output = () => { try { return readFileSync(logFile, 'utf8') } catch { return '' } }
  await waitFor('the client load to start', LOAD_START_TIMEOUT_MS, async () => {
    if (!proc.alive()) throw new Error(`the client load exited before it started:\n${proc.logTail()}`)
    return output().split('\n').includes('ready')
  }).catch(async (err) => {
    await proc.stop()
    throw new Error(`${err.message}\n${proc.logTail()}`)
  })
  await sleep(LOAD_LEAD_MS)
  return {
    finish: async () => {
      // taskset execs node, so the pid is the load's own.
      process.kill(proc.pid, 'SIGUSR2')
      /** @type {NodeJS.Timeout | undefined} */
      let timer
      const outcome = await Promise.race([proc.exited, new Promise((resolve) => { timer = setTimeout(resolve, LOAD_STOP_TIMEOUT_MS, null) })])
      clearTimeout(timer)
      if (outcome === null) {
        await proc.stop()
        throw new Error(`the client load did not stop within ${LOAD_STOP_TIMEOUT_MS / 1000} s`)
      }
      const line = output().split('\n').filter((l) => l.startsWith('{')).pop()
      if (line === undefined) throw new Error(`the client load ended without its figures:\n${proc.logTail()}`)
      return JSON.parse(line)
    }
  }
}

/**
 * The admin commands every node served between two INFO commandstats snapshots, summed over the nodes.
 * @param {Map<string, { calls: number, usec: number }>[]} before
 * @param {Map<string, { calls: number, usec: number }>[]} after
 * @returns {Record<string, { calls: number, usec: number }>}
 */
function adminCommands (before, after) {
  /** @type {Record<string, { calls: number, usec: number }>} */
  const total = {}
  after.forEach((stats, i) => {
    for (const [name, { calls, usec }] of stats) {
      if (NOT_ADMIN.has(name)) continue
      const was = before[i]?.get(name) ?? { calls: 0, usec: 0 }
      if (calls === was.calls) continue
      const entry = total[name] ??= { calls: 0, usec: 0 }
      entry.calls += calls - was.calls
      entry.usec += usec - was.usec
    }
  })
  return total
}

/**
 * Keys held by the masters together.
 * @param {readonly string[]} masters
 */
async function totalKeys (masters) {
  const sizes = await Promise.all(masters.map(async (address) => Number(await cli(address, 'DBSIZE'))))
  return sizes.reduce((sum, n) => sum + n, 0)
}

/** redis-server, redis-cli and taskset on PATH, and two CPUs to pin the movers apart from Redis and the load. */
function requireTools () {
  for (const tool of ['redis-server', 'redis-cli', 'taskset']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      throw new Error(`the autoscale bench needs ${tool}: install with \`sudo apt-get install -y ${tool === 'taskset' ? 'util-linux' : 'redis-server'}\``)
    }
  }
  if (availableParallelism() < 2) throw new Error(`the bench pins the movers and Redis to two different CPUs; this process may use ${availableParallelism()}`)
}

/** Versions and the commit, for the report. */
function environment (/** @type {string} */ gatewayDir) {
  const git = (/** @type {string[]} */ args) => {
    try {
      return execFileSync('git', args, { encoding: 'utf8', cwd: gatewayDir, stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    } catch {
      return null
    }
  }
  const commit = git(['rev-parse', '--short', 'HEAD'])
  const dirty = (git(['status', '--porcelain', '--', 'src']) ?? '') !== ''
  return {
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    commit: commit === null ? `Breakwater from ${gatewayDir}` : `Breakwater ${commit}${dirty ? ' + uncommitted changes in src/' : ''}`,
    node: process.version,
    redis: execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).split(' ').slice(0, 3).join(' ')
  }
}

main().catch(async (err) => {
  log(`autoscale bench failed: ${err instanceof Error ? err.stack : err}`)
  await stopAll()
  process.exit(1)
})
