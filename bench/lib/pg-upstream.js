// The bulk scenario's upstream (bench/bulk-upstream.js over PostgreSQL) on the load CPU with its database backends, and its write counters read between runs.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { freePort, getJson, waitForHttp } from './net.js'
import { LOAD_CPU, spawnPinned } from './processes.js'

const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')

/** The PostgreSQL server of these machines: trust auth, database `test`. BENCH_DATABASE_URL names another. */
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test'

/**
 * @typedef {object} UpstreamStats  what the service's `GET /stats` answers
 * @property {string} table
 * @property {number[]} backendPids
 * @property {number[]} serverPids
 * @property {{ single: number, bulk: number, other: number }} requests
 * @property {{ single: number, bulk: number }} items  stored, by endpoint
 * @property {number} errors  requests answered 500
 * @property {number} inFlight  writes not answered yet
 * @property {{ count: number, sum: number }} bulkMs  bulk requests and their total time in ms
 * @property {number[]} [bulkDurationsMs]  with `?bulkFrom=K`: each bulk request's ms from the K-th on
 * @property {number} [rows]  with `?verify=1`: the rows the table holds
 * @property {{ body: unknown, n: number }[]} [bodies]  with `?verify=1`: the five most frequent bodies stored, with their rows
 */

/**
 * @typedef {object} PgUpstream
 * @property {string} url  `http://127.0.0.1:PORT`
 * @property {number} pid  the service's
 * @property {number[]} pids  the service, its pool's PostgreSQL backends and PostgreSQL's own processes: the upstream's
 *   CPU time, accounted apart from other work on the machine
 * @property {string} table
 * @property {(query?: string) => Promise<UpstreamStats>} stats
 * @property {() => Promise<UpstreamStats>} settled  the counters once no write is in flight and they stayed still for `settleMs`
 * @property {() => Promise<{ rows: number, stored: number, bodies: { body: unknown, n: number }[] }>} verify  the table's
 *   rows, the items the service answered as stored, and the most frequent bodies in the table
 * @property {() => Promise<void>} stop  the service drops its table on the way out
 */

/**
 * Starts bench/bulk-upstream.js on a free loopback port, pinned to `cpu`, with a table of its own, and pins its pool's
 * PostgreSQL backends to the same CPU: the upstream's whole work then stays off the proxy's CPU, as nginx's does.
 * @param {object} options
 * @param {string} options.dir  the run's temp dir: the service's log
 * @param {(message: string) => void} options.log
 * @param {string} [options.database]  a PostgreSQL URL
 * @param {number} [options.poolSize]  connections of the service's pool
 * @param {number} [options.settleMs]  how long the counters must stay still before `settled()` returns them: more than
 *   the gateway's maxWait, so that a batch still waiting in the gateway when wrk stops is counted in its run
 * @param {number} [options.cpu]
 * @returns {Promise<PgUpstream>}
 */
export async function startPgUpstream ({ dir, log, database = process.env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL, poolSize = 8, settleMs = 200, cpu = LOAD_CPU }) {
  const port = await freePort()
  const table = `breakwater_bench_items_${randomBytes(4).toString('hex')}`
  const proc = spawnPinned('bulk-upstream', cpu, process.execPath, [
    join(BENCH_DIR, 'bulk-upstream.js'), '--port', String(port), '--database', database, '--table', table, '--pool', String(poolSize)
  ], { logFile: join(dir, 'bulk-upstream.stderr.log'), stdout: 'log' })
  const url = `http://127.0.0.1:${port}`
  // The check of ?verify=1 reads the whole table: seconds after a long run.
  const stats = (/** @type {string} */ query = '') => /** @type {Promise<UpstreamStats>} */ (getJson(`${url}/stats${query}`, 120_000))
  try {
    await waitForHttp(`${url}/`, { proc })
    const first = await stats()
    pin(first.backendPids, cpu, log)
    return {
      url,
      pid: proc.pid,
      pids: [proc.pid, ...first.backendPids, ...first.serverPids],
      table,
      stats,
      settled: () => settled(stats, settleMs),
      async verify () {
        const { rows = NaN, items, bodies = [] } = await stats('?verify=1')
        return { rows, stored: items.single + items.bulk, bodies }
      },
      stop: () => proc.stop()
    }
  } catch (err) {
    await proc.stop()
    throw err
  }
}

/**
 * Pins the service's PostgreSQL backends to `cpu`. They serve only its connections and end with them; PostgreSQL's
 * shared processes are left where they are. Without root the backends float over both CPUs: said, not fatal.
 * @param {readonly number[]} pids
 * @param {number} cpu
 * @param {(message: string) => void} log
 */
function pin (pids, cpu, log) {
  for (const pid of pids) {
    try {
      execFileSync('taskset', ['-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' })
    } catch (err) {
      log(`  warning: could not pin PostgreSQL backend ${pid} to CPU ${cpu} (${/** @type {Error} */ (err).message}); it runs on any CPU`)
    }
  }
}

/** The counters that change while writes go on. */
const moving = (/** @type {UpstreamStats} */ s) => [s.requests.single, s.requests.bulk, s.items.single, s.items.bulk, s.errors].join()

/**
 * Polls the counters until no write is in flight and they did not move for `settleMs`; at most 15 s.
 * @param {(query?: string) => Promise<UpstreamStats>} stats
 * @param {number} settleMs
 * @returns {Promise<UpstreamStats>}
 */
async function settled (stats, settleMs) {
  const deadline = Date.now() + 15_000
  let last = await stats()
  while (Date.now() < deadline) {
    await sleep(settleMs)
    const now = await stats()
    if (now.inFlight === 0 && moving(now) === moving(last)) return now
    last = now
  }
  throw new Error(`the bulk upstream's counters did not settle within 15 s (${last.inFlight} writes in flight)`)
}
