// promtool (from Debian's prometheus package) in a child process with a deadline: checks the Prometheus config and alert rules.
import { spawn } from 'node:child_process'
import { REPO_ROOT } from './cli.js'

export const PROMTOOL_MISSING = 'promtool is not installed: install Debian\'s prometheus package (apt-get install prometheus)'

export interface PromtoolRun {
  readonly code: number | null
  /** stdout and stderr as they came: promtool prints its findings on one and its failures on the other. */
  readonly output: string
}

export interface PromtoolOptions {
  /** @default the repository root, so paths like config/alerts.yml work */
  readonly cwd?: string
  /** Replaces PATH, which is where promtool is looked up. */
  readonly path?: string
  /**
   * Past this the process is killed and the run rejects; promtool answers these checks in well under a second.
   * @default 30000 (ms)
   */
  readonly timeoutMs?: number
}

/** Runs `promtool ...args` to completion; rejects with PROMTOOL_MISSING when there is no promtool, and past the deadline. */
export async function runPromtool (args: readonly string[], options: PromtoolOptions = {}): Promise<PromtoolRun> {
  const env = options.path === undefined ? process.env : { ...process.env, PATH: options.path }
  const child = spawn('promtool', args, { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const timeoutMs = options.timeoutMs ?? 30_000
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`promtool ${args.join(' ')} did not exit within ${timeoutMs} ms; output: ${output}`))
    }, timeoutMs)
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(err.code === 'ENOENT' ? new Error(PROMTOOL_MISSING, { cause: err }) : err)
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}
