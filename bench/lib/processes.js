// Child processes of the bench: spawned pinned to one CPU in a process group of their own, tracked, and all stopped on exit, failure or Ctrl-C.
import { spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'

/** The proxy under test runs on this CPU. */
export const PROXY_CPU = 0
/** wrk, the nginx origin and any other service (redis-server) run on this one. */
export const LOAD_CPU = 1

/** How long a process may take to exit after SIGTERM before its group gets SIGKILL. */
const DEFAULT_GRACE_MS = 5_000

/** Every process group this bench started and has not seen exit, by leader pid. */
const running = new Map()

/**
 * @typedef {object} Managed
 * @property {string} name
 * @property {number} pid
 * @property {Promise<{ code: number | null, signal: string | null }>} exited
 * @property {() => boolean} alive
 * @property {() => string} output  what it wrote to stdout, when spawned with `stdout: 'capture'`
 * @property {() => string} logTail  the end of its stderr log
 * @property {(options?: { signal?: NodeJS.Signals, graceMs?: number }) => Promise<void>} stop
 */

/**
 * Starts `command args` under `taskset -c cpu`, as the leader of a new process group so that stopping it takes its
 * children too (nginx's worker). stderr goes to `logFile`; stdout to /dev/null ('null'), to the log ('log'), or into
 * memory ('capture').
 * @param {string} name
 * @param {number} cpu
 * @param {string} command
 * @param {readonly string[]} args
 * @param {{ logFile: string, stdout?: 'null' | 'log' | 'capture', env?: NodeJS.ProcessEnv, cwd?: string }} options
 * @returns {Managed}
 */
export function spawnPinned (name, cpu, command, args, options) {
  const { logFile, stdout = 'null', env = process.env, cwd } = options
  const errFd = openSync(logFile, 'a')
  const outFd = stdout === 'null' ? openSync('/dev/null', 'w') : stdout === 'log' ? openSync(logFile, 'a') : null
  const child = spawn('taskset', ['-c', String(cpu), command, ...args], {
    stdio: ['ignore', outFd ?? 'pipe', errFd],
    detached: true,
    env,
    cwd
  })
  closeSync(errFd)
  if (outFd !== null) closeSync(outFd)

  let captured = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk) => { captured += chunk })
  let exitedAlready = false
  /** @type {Promise<{ code: number | null, signal: string | null }>} */
  const exited = new Promise((resolve) => {
    const done = (/** @type {number | null} */ code, /** @type {string | null} */ signal) => {
      if (exitedAlready) return
      exitedAlready = true
      running.delete(pid)
      resolve({ code, signal })
    }
    child.once('exit', done)
    child.once('error', (err) => {
      captured += `spawn failed: ${err.message}`
      done(null, null)
    })
  })
  const pid = /** @type {number} */ (child.pid)

  /** @type {Managed} */
  const managed = {
    name,
    pid,
    exited,
    alive: () => !exitedAlready,
    output: () => captured,
    logTail: () => tail(logFile),
    stop: async ({ signal = 'SIGTERM', graceMs = DEFAULT_GRACE_MS } = {}) => {
      if (exitedAlready) return
      killGroup(pid, signal)
      if (await settlesWithin(exited, graceMs)) return
      killGroup(pid, 'SIGKILL')
      await settlesWithin(exited, 2_000)
    }
  }
  if (pid !== undefined) running.set(pid, managed)
  return managed
}

/** Stops every process group still running, SIGTERM first. */
export async function stopAll (graceMs = DEFAULT_GRACE_MS) {
  await Promise.all([...running.values()].map((managed) => managed.stop({ graceMs })))
}

let installed = false

/**
 * Stops every child on Ctrl-C, SIGTERM, SIGHUP or an uncaught error, and SIGKILLs any left at exit. The children
 * have process groups of their own, so a terminal's Ctrl-C reaches only this process, which stops them in order.
 * @param {(message: string) => void} log
 */
export function installCleanup (log) {
  if (installed) return
  installed = true
  const bail = (/** @type {string} */ why, /** @type {number} */ exitCode) => {
    log(`${why}: stopping ${running.size} child process(es)`)
    stopAll(2_000).finally(() => process.exit(exitCode))
  }
  for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    process.once(signal, () => bail(`interrupted by ${signal}`, 130))
  }
  process.once('uncaughtException', (err) => bail(`uncaught error: ${err.stack ?? err}`, 1))
  process.once('unhandledRejection', (err) => bail(`unhandled rejection: ${/** @type {Error} */ (err)?.stack ?? err}`, 1))
  process.once('exit', () => {
    for (const pid of running.keys()) killGroup(pid, 'SIGKILL')
  })
}

/**
 * @param {number} pid
 * @param {NodeJS.Signals} signal
 */
function killGroup (pid, signal) {
  try {
    process.kill(-pid, signal)
  } catch {
    // Already gone.
  }
}

/**
 * @param {Promise<unknown>} promise
 * @param {number} ms
 * @returns {Promise<boolean>} true when the promise settled in time
 */
async function settlesWithin (promise, ms) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer
  const timeout = new Promise((resolve) => { timer = setTimeout(resolve, ms, false) })
  const settled = await Promise.race([promise.then(() => true), timeout])
  clearTimeout(timer)
  return settled === true
}

/** The last 2 KB of a log file, for error messages. */
function tail (/** @type {string} */ file) {
  try {
    const text = readFileSync(file, 'utf8')
    return text.slice(-2048).trim()
  } catch {
    return ''
  }
}
