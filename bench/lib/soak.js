// The soak runner: one gateway per kind of answer, memory and descriptors read after a warm-up and after N requests, and the markdown table.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { WebSocket } from 'ws'
import { freePort, probe, waitForHttp } from './net.js'
import { PROXY_CPU, spawnPinned } from './processes.js'
import { runWrk } from './wrk.js'

/** Issue 14's bound on what a kind may grow from its warm-up to the end, RSS and external memory alike. */
export const MAX_GROWTH_MIB = 20

/** The warm-up: this share of the counted requests, and at least MIN_WARMUP_REQUESTS. */
const WARMUP_SHARE = 0.1
const MIN_WARMUP_REQUESTS = 50_000

/** The longest single wrk run: the requests are reached in runs of at most this. */
const MAX_RUN_SEC = 30

/**
 * How long after the load stops a reading is taken: the access log's batches are written, and the clients' sockets
 * and the upstream's idle keep-alive connections (undici closes them after 4 s) are closed.
 */
const SETTLE_MS = 10_000

const MIB = 1024 * 1024

/**
 * @typedef {object} Reading
 * @property {number} rss  bytes
 * @property {number} external  bytes
 * @property {number} fds
 */

/**
 * @typedef {object} SoakRow
 * @property {import('../scenarios/soak.js').SoakKind} kind
 * @property {number} requests  what wrk counted, warm-up excluded
 * @property {number} rps
 * @property {number} errors  socket errors, and answers of another status than the kind's
 * @property {Reading} warm
 * @property {Reading} after
 * @property {number} logBytes  the access log (stdout) written during the counted requests
 */

/**
 * Runs every kind of `scenario` in turn.
 * @param {typeof import('../scenarios/soak.js').soak} scenario
 * @param {{ requests: number, warmupSec: number, kinds?: string[] }} options
 * @param {import('./candidates.js').RunContext} ctx
 * @returns {Promise<SoakRow[]>}
 */
export async function runSoak (scenario, options, ctx) {
  const { services, stop } = await scenario.setup(ctx)
  /** @type {SoakRow[]} */
  const rows = []
  try {
    for (const kind of scenario.kinds.filter((k) => options.kinds === undefined || options.kinds.includes(k.id))) {
      rows.push(await soakKind(kind, services, options, ctx))
    }
  } finally {
    await stop()
  }
  return rows
}

/**
 * @param {import('../scenarios/soak.js').SoakKind} kind
 * @param {Record<string, any>} services
 * @param {{ requests: number, warmupSec: number }} options
 * @param {import('./candidates.js').RunContext} ctx
 * @returns {Promise<SoakRow>}
 */
async function soakKind (kind, services, options, ctx) {
  const port = await freePort()
  const configFile = join(ctx.dir, `soak-${kind.id}.yaml`)
  writeFileSync(configFile, `# Written by bench/lib/soak.js for one bench run.\nserver:\n  host: 127.0.0.1\n  port: ${port}\nroutes:\n${kind.routes(services)}`)
  const logFile = join(ctx.dir, `soak-${kind.id}.log`)
  // stdout (the access log) and stderr both to the file: the log goes to a file, as the soak asks.
  // The inspector, for the full GC before each reading; it costs nothing while no session is attached.
  const inspectPort = await freePort()
  const args = [`--inspect=127.0.0.1:${inspectPort}`, join(ctx.gatewayDir, 'bin', 'breakwater.js'), 'start', '--config', configFile]
  const proc = spawnPinned(`soak-${kind.id}`, PROXY_CPU, process.execPath, args, {
    logFile,
    stdout: 'log',
    cwd: ctx.gatewayDir
  })
  const url = `http://127.0.0.1:${port}`
  try {
    await waitForHttp(`${url}/actuator/health/readiness`, { proc })
    await kind.afterStart?.(url)
    const first = await probe(`${url}/`)
    if (first.status !== kind.status) throw new Error(`soak ${kind.id}: the probe answered ${first.status}, not ${kind.status}`)

    // A warm-up long enough for the heap to reach its working size (the first 100k requests or so grow it by tens of
    // MiB, and then it stays): what grows after that is what the issue is about.
    const warmup = await load(url, Math.max(MIN_WARMUP_REQUESTS, options.requests * WARMUP_SHARE), options.warmupSec, ctx)
    await sleep(SETTLE_MS)
    const warm = await read(proc.pid, url, inspectPort)
    const logBefore = statSync(logFile).size
    ctx.log(`  ${kind.id}: warm RSS ${mib(warm.rss)} MiB, external ${mib(warm.external)} MiB, ${warm.fds} fds; ${options.requests} requests to go`)

    const counted = await load(url, options.requests, 5, ctx, (requests, rps) => {
      ctx.log(`  ${kind.id}: ${requests} requests, ${Math.round(rps)} req/s, RSS ${mib(rssOf(proc.pid))} MiB`)
    })
    await sleep(SETTLE_MS)
    const after = await read(proc.pid, url, inspectPort)
    const errors = [warmup, counted].reduce((sum, run) => sum + run.errors.socket + (kind.status < 300 ? run.errors.non2xx : run.requests - run.errors.non2xx), 0)
    // The readiness probes and the scrapes of `read` have access lines too: a few hundred bytes against gigabytes.
    return { kind, requests: counted.requests, rps: counted.rps, errors, warm, after, logBytes: statSync(logFile).size - logBefore }
  } finally {
    await proc.stop({ graceMs: 15_000 })
  }
}

/**
 * Descriptors first (the GC's inspector session and the scrape are descriptors too), then memory after a full GC:
 * without it a reading lands anywhere on the old generation's sawtooth, measured at 128 to 162 MiB of RSS for the
 * same gateway between runs of the same load (garbage promoted and not yet compacted), and V8's memory reducer does
 * not compact an idle process in 10 s.
 * @param {number} pid
 * @param {string} url
 * @param {number} inspectPort
 * @returns {Promise<Reading>}
 */
async function read (pid, url, inspectPort) {
  const fds = readdirSync(`/proc/${pid}/fd`).length
  await collectGarbage(inspectPort)
  const rss = rssOf(pid)
  const metrics = (await probe(`${url}/actuator/prometheus`)).body
  const external = /^nodejs_external_memory_bytes (\S+)$/m.exec(metrics)
  if (external === null) throw new Error('soak: /actuator/prometheus has no nodejs_external_memory_bytes')
  return { rss, external: Number(external[1]), fds }
}

/**
 * A full GC in the gateway through the inspector protocol (`HeapProfiler.collectGarbage`), as DevTools' button does.
 * @param {number} inspectPort
 */
async function collectGarbage (inspectPort) {
  const targets = /** @type {Array<{ webSocketDebuggerUrl: string }>} */ (JSON.parse((await probe(`http://127.0.0.1:${inspectPort}/json/list`)).body))
  const target = targets[0]
  if (target === undefined) throw new Error(`soak: no inspector target on port ${inspectPort}`)
  const ws = new WebSocket(target.webSocketDebuggerUrl)
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }))
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('soak: the inspector did not answer HeapProfiler.collectGarbage in 10 s')) }, 10_000)
      ws.on('message', (/** @type {Buffer} */ data) => {
        if (JSON.parse(data.toString()).id !== 1) return
        clearTimeout(timer)
        resolve(undefined)
      })
    })
  } finally {
    ws.close()
  }
}

/**
 * wrk -c64 runs until `requests` are answered, each sized from the rate so far (the first `firstSec`), so that the
 * last ends near the count rather than a whole run past it.
 * @param {string} url
 * @param {number} requests
 * @param {number} firstSec
 * @param {import('./candidates.js').RunContext} ctx
 * @param {(requests: number, rps: number) => void} [progress]
 * @returns {Promise<{ requests: number, rps: number, errors: { socket: number, non2xx: number } }>}
 */
async function load (url, requests, firstSec, ctx, progress) {
  let done = 0
  let seconds = 0
  let rps = 0
  const errors = { socket: 0, non2xx: 0 }
  while (done < requests) {
    const durationSec = rps === 0 ? firstSec : Math.max(1, Math.min(MAX_RUN_SEC, Math.ceil((requests - done) / rps)))
    const run = await runWrk({ url: `${url}/`, connections: 64, durationSec, dir: ctx.dir })
    done += run.requests
    seconds += run.seconds
    rps = done / seconds
    errors.socket += run.errors.connect + run.errors.read + run.errors.write + run.errors.timeout
    errors.non2xx += run.errors.non2xx
    progress?.(done, rps)
  }
  return { requests: done, rps, errors }
}

function rssOf (/** @type {number} */ pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)
  if (kb === null) throw new Error(`soak: no VmRSS in /proc/${pid}/status`)
  return Number(kb[1]) * 1024
}

const mib = (/** @type {number} */ bytes) => (bytes / MIB).toFixed(1)

/**
 * The markdown table, one row per kind, with its verdict against MAX_GROWTH_MIB and the warm-up's descriptors.
 * @param {SoakRow[]} rows
 */
export function formatSoakTable (rows) {
  const lines = [
    '| kind | requests | req/s | RSS warm / after (MiB) | RSS growth | external warm / after (MiB) | external growth | fds warm / after | log bytes/request | verdict |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|'
  ]
  for (const row of rows) {
    lines.push(`| ${row.kind.label} | ${row.requests.toLocaleString('en-US')} | ${Math.round(row.rps).toLocaleString('en-US')} | ` +
      `${mib(row.warm.rss)} / ${mib(row.after.rss)} | ${signed(row.after.rss - row.warm.rss)} | ${mib(row.warm.external)} / ${mib(row.after.external)} | ` +
      `${signed(row.after.external - row.warm.external)} | ${row.warm.fds} / ${row.after.fds} | ${(row.logBytes / row.requests).toFixed(0)} | ${verdict(row)} |`)
  }
  return lines.join('\n')
}

const signed = (/** @type {number} */ bytes) => `${bytes >= 0 ? '+' : ''}${mib(bytes)}`

/** `pass`, or what failed. */
export function verdict (/** @type {SoakRow} */ row) {
  const failed = []
  if (row.after.rss - row.warm.rss > MAX_GROWTH_MIB * MIB) failed.push(`RSS grew more than ${MAX_GROWTH_MIB} MiB`)
  if (row.after.external - row.warm.external > MAX_GROWTH_MIB * MIB) failed.push(`external grew more than ${MAX_GROWTH_MIB} MiB`)
  if (row.after.fds > row.warm.fds) failed.push('descriptors left open')
  if (row.errors > 0) failed.push(`${row.errors} errors`)
  return failed.length === 0 ? 'pass' : `FAIL: ${failed.join(', ')}`
}
