// A real Prometheus for tests: Debian's `prometheus` on an ephemeral loopback port, scraping given targets; stopped in t.teardown.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { stringify } from 'yaml'
import { freePort } from './ports.js'
import { waitUntil } from './wait.js'

/** How long Prometheus may take to answer /-/ready. */
const START_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 5_000

export interface PrometheusServer {
  readonly url: string
  /** Runs an instant query at the current time; resolves with its result vector (or matrix, scalar). */
  query: (expr: string) => Promise<PrometheusResult>
}

export interface PrometheusResult {
  readonly resultType: string
  readonly result: unknown[]
}

export interface PrometheusOptions {
  /** The scrape job, as Prometheus config: job_name, metrics_path, static_configs... */
  readonly scrapeConfigs: ReadonlyArray<Record<string, unknown>>
  /** Rule files (absolute paths) to load and evaluate. */
  readonly ruleFiles?: readonly string[]
  /** @default 1s */
  readonly scrapeInterval?: string
}

interface TapLike { teardown: (fn: () => unknown) => void }

/** Starts Prometheus with a 1 s scrape and evaluation interval; fails with a clear message when it is not installed. */
export async function startPrometheus (t: TapLike, options: PrometheusOptions): Promise<PrometheusServer> {
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-prometheus-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const interval = options.scrapeInterval ?? '1s'
  const configFile = join(dir, 'prometheus.yml')
  await writeFile(configFile, stringify({
    global: { scrape_interval: interval, evaluation_interval: interval },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: options.scrapeConfigs
  }))
  const port = await freePort()
  const child = spawn('prometheus', [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn'
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const spawned = await Promise.race([once(child, 'spawn').then(() => null), once(child, 'error').then(([err]) => err as Error)])
  if (spawned !== null) {
    throw new Error(`could not start prometheus (${spawned.message}): install Debian's prometheus package (apt-get install prometheus)`)
  }
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  })
  const url = `http://127.0.0.1:${port}`
  await waitUntil(async () => {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${stderr}`)
    try {
      const res = await request(`${url}/-/ready`)
      await res.body.dump()
      return res.statusCode === 200
    } catch {
      return false
    }
  }, 'prometheus to be ready', START_TIMEOUT_MS, 50)
  return {
    url,
    query: async (expr) => {
      const res = await request(`${url}/api/v1/query?${new URLSearchParams({ query: expr }).toString()}`)
      const body = await res.body.json() as { status: string, error?: string, data?: PrometheusResult }
      if (body.status !== 'success' || body.data === undefined) throw new Error(`query failed: ${body.error ?? res.statusCode}: ${expr}`)
      return body.data
    }
  }
}
