// The gateway as a user runs it: `node bin/breakwater.js` in a child process, so its memory and signals are its own.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const BIN = join(REPO_ROOT, 'bin', 'breakwater.js')

/**
 * The environment a user's shell would give the CLI: the test runner's NODE_OPTIONS (tap's process-info loader)
 * would otherwise load into the gateway too, and weigh on the very memory the streaming tests watch.
 */
function cliEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  if (extra.NODE_OPTIONS === undefined) delete env.NODE_OPTIONS
  return env
}

/** bin/breakwater.js runs dist/: fail with a clear message rather than a module-not-found trace. */
function assertBuilt (): void {
  if (!existsSync(join(REPO_ROOT, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` before the CLI tests')
}

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface CliRun extends Exit {
  readonly stdout: string
  readonly stderr: string
}

interface TapLike { teardown: (fn: () => unknown) => void }

/** Writes `yaml` to a fresh temporary file, removed in teardown; returns its path. */
export async function writeConfig (t: TapLike, yaml: string, name = 'gateway.yaml'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, name)
  await writeFile(file, yaml)
  return file
}

/** Runs the CLI to completion (killed past `timeoutMs`) and returns its exit and output. */
export async function runCli (args: readonly string[], options: { env?: Record<string, string>, timeoutMs?: number } = {}): Promise<CliRun> {
  assertBuilt()
  const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: cliEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const timeoutMs = options.timeoutMs ?? 10_000
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const exit = await exited(child)
  clearTimeout(timer)
  if (exit.signal === 'SIGKILL') throw new Error(`breakwater ${args.join(' ')} did not exit within ${timeoutMs} ms; stdout: ${stdout} stderr: ${stderr}`)
  return { ...exit, stdout, stderr }
}

export interface RunningGateway {
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  readonly url: string
  /** Every JSON log line so far (lines that are not JSON are kept as `{ raw }`). */
  readonly logs: Array<Record<string, unknown>>
  /** Resolves once the process has exited, with its code or signal. */
  readonly exit: Promise<Exit>
  stderr: () => string
}

/**
 * Starts `breakwater <command> --config <file> [...args]` (command: start unless given) and resolves with the port from
 * its startup line (start: the first listener's url, http://127.0.0.1:PORT) or Fastify's "Server listening at
 * http://127.0.0.1:PORT" (autoscale). The process is killed (SIGKILL) in teardown if it still runs.
 */
export async function startCli (t: TapLike, configFile: string, options: { command?: string, args?: readonly string[], env?: Record<string, string>, readyTimeoutMs?: number } = {}): Promise<RunningGateway> {
  assertBuilt()
  const child = spawn(process.execPath, [BIN, options.command ?? 'start', '--config', configFile, ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env: cliEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exit = exited(child)
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exit
  })

  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  let pending = ''
  let onLine: (line: Record<string, unknown>) => void = () => {}
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk
    let newline = pending.indexOf('\n')
    while (newline !== -1) {
      const text = pending.slice(0, newline)
      pending = pending.slice(newline + 1)
      let line: Record<string, unknown>
      try {
        line = JSON.parse(text) as Record<string, unknown>
      } catch {
        line = { raw: text }
      }
      logs.push(line)
      onLine(line)
      newline = pending.indexOf('\n')
    }
  })

  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no startup or "Server listening" line within ${readyTimeoutMs} ms; stderr: ${stderr}`)) }, readyTimeoutMs)
    const done = (fn: () => void): void => { clearTimeout(timer); onLine = () => {}; fn() }
    onLine = (line) => {
      const listeners = line.listeners as Array<{ url: string }> | undefined
      const match = /^(?:Server listening at )?http:\/\/127\.0\.0\.1:(\d+)$/.exec(listeners?.[0]?.url ?? String(line.msg))
      if (match !== null) done(() => { resolve(Number(match[1])) })
    }
    exit.then((status) => {
      done(() => { reject(new Error(`breakwater exited (${status.code ?? status.signal}) before listening; stderr: ${stderr}`)) })
    }, () => {})
  })
  return { child, pid: child.pid as number, port, url: `http://127.0.0.1:${port}`, logs, exit, stderr: () => stderr }
}

async function exited (child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode }
  return await new Promise((resolve) => {
    child.once('exit', (code, signal) => { resolve({ code, signal }) })
  })
}

/** Resets the process's peak RSS (VmHWM) to its current RSS, so a later VmHWM is the peak since now (Linux 4.0+). */
export async function resetPeakRss (pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5')
}

/** A field of /proc/PID/status in bytes, e.g. VmRSS or VmHWM (Linux). */
export async function procStatusBytes (pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)
  if (match === null) throw new Error(`no ${field} in /proc/${pid}/status`)
  return Number(match[1]) * 1024
}
