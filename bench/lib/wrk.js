// wrk runs (pinned to the load CPU, bounded in time) and the parsing of its report.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { LOAD_CPU, spawnPinned } from './processes.js'

/**
 * @typedef {object} WrkResult
 * @property {number} requests  completed requests, as wrk counts them
 * @property {number} seconds  the run's duration, as wrk measured it
 * @property {number} rps  wrk's Requests/sec
 * @property {{ p50: number, p75: number, p90: number, p99: number }} latencyMs
 * @property {{ connect: number, read: number, write: number, timeout: number, non2xx: number }} errors
 * @property {number} cpuSeconds  wrk's own user+system time (from the shell's `times`), so that other work can be told apart
 * @property {string} raw  wrk's report, for the record
 */

/**
 * @param {object} options
 * @param {string} options.url
 * @param {number} options.connections
 * @param {number} options.durationSec
 * @param {string} options.dir  where its stderr log goes
 * @param {number} [options.threads]
 * @param {string} [options.script]  a Lua script (-s), for scenarios that vary the path or the body
 * @param {import('./net.js').RequestSpec} [options.request]  the method, headers and body of every request (a POST
 *   of one JSON item), sent through a Lua script written in `dir`; not with `script`
 * @param {number} [options.timeoutSec]  an answer later than this counts as a timeout error, not a latency
 * @param {number} [options.cpu]
 * @returns {Promise<WrkResult>}
 */
export async function runWrk ({ url, connections, durationSec, dir, threads = 1, script, request, timeoutSec = 2, cpu = LOAD_CPU }) {
  if (script !== undefined && request !== undefined) throw new Error('wrk takes one Lua script: give options.script or options.request, not both')
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${durationSec}s`, '--latency', '--timeout', `${timeoutSec}s`]
  if (script !== undefined) args.push('-s', script)
  if (request !== undefined) args.push('-s', writeRequestScript(dir, request))
  args.push(url)
  // Through sh, whose `times` then prints wrk's CPU time after wrk's report.
  const shell = ['-c', 'wrk "$@"; status=$?; times; exit $status', 'wrk']
  const proc = spawnPinned('wrk', cpu, 'sh', [...shell, ...args], { logFile: join(dir, 'wrk.log'), stdout: 'capture' })
  // wrk stops by itself after -d; the timer is the bound should it hang.
  const timer = setTimeout(() => { proc.stop({ signal: 'SIGKILL' }) }, (durationSec + timeoutSec + 15) * 1000)
  const { code, signal } = await proc.exited
  clearTimeout(timer)
  if (code !== 0) throw new Error(`wrk ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${proc.output()}\n${proc.logTail()}`)
  return parseWrk(proc.output())
}

/**
 * A Lua script that sets wrk's one request (wrk builds each request from `wrk.method`, `wrk.headers` and `wrk.body`,
 * and adds Content-Length itself).
 * @param {string} dir
 * @param {import('./net.js').RequestSpec} request
 * @returns {string} the script's path
 */
export function writeRequestScript (dir, request) {
  const lines = [
    '-- Written by bench/lib/wrk.js for one bench run: every request of the run is this one.',
    `wrk.method = ${luaString(request.method)}`,
    ...Object.entries(request.headers ?? {}).map(([name, value]) => `wrk.headers[${luaString(name)}] = ${luaString(value)}`),
    ...(request.body === undefined ? [] : [`wrk.body = ${luaString(request.body)}`])
  ]
  const file = join(dir, 'wrk-request.lua')
  writeFileSync(file, `${lines.join('\n')}\n`)
  return file
}

/** A Lua string literal of `text`'s UTF-8 bytes: printable ASCII as is, the rest as decimal escapes (Lua 5.1 has no \u). */
export function luaString (/** @type {string} */ text) {
  let out = '"'
  for (const byte of Buffer.from(text, 'utf8')) {
    if (byte === 0x22 || byte === 0x5c) out += `\\${String.fromCharCode(byte)}`
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte)
    else out += `\\${String(byte).padStart(3, '0')}`
  }
  return `${out}"`
}

const UNIT_MS = /** @type {Record<string, number>} */ ({ us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 })

/** `812.00us`, `1.23ms`, `2.00s` -> milliseconds. */
function toMs (/** @type {string} */ text) {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text)
  if (match === null) throw new Error(`wrk: cannot read the duration "${text}"`)
  return Number(match[1]) * /** @type {number} */ (UNIT_MS[/** @type {string} */ (match[2])])
}

/**
 * @param {string} output  wrk's stdout with --latency
 * @returns {WrkResult}
 */
export function parseWrk (output) {
  const need = (/** @type {RegExp} */ pattern, /** @type {string} */ what) => {
    const match = pattern.exec(output)
    if (match === null) throw new Error(`wrk: no ${what} in its report:\n${output}`)
    return match
  }
  const total = need(/(\d+) requests in ([\d.]+\w+),/, 'request count')
  const percentile = (/** @type {string} */ p) => toMs(/** @type {string} */ (need(new RegExp(`^\\s+${p}%\\s+(\\S+)\\s*$`, 'm'), `${p}% latency`)[1]))
  const sockets = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output)
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output)
  // `times` prints the shell's user and system time, then its children's: `0m1.230000s 0m0.450000s`.
  const times = [...output.matchAll(/^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/gm)].at(-1)
  const toSeconds = (/** @type {string | undefined} */ m, /** @type {string | undefined} */ sec) => Number(m ?? 0) * 60 + Number(sec ?? 0)
  return {
    requests: Number(total[1]),
    seconds: toMs(/** @type {string} */ (total[2])) / 1000,
    rps: Number(need(/Requests\/sec:\s+([\d.]+)/, 'Requests/sec')[1]),
    latencyMs: { p50: percentile('50'), p75: percentile('75'), p90: percentile('90'), p99: percentile('99') },
    errors: {
      connect: Number(sockets?.[1] ?? 0),
      read: Number(sockets?.[2] ?? 0),
      write: Number(sockets?.[3] ?? 0),
      timeout: Number(sockets?.[4] ?? 0),
      non2xx: Number(non2xx?.[1] ?? 0)
    },
    cpuSeconds: times === undefined ? NaN : toSeconds(times[1], times[2]) + toSeconds(times[3], times[4]),
    raw: output
  }
}
