// The autoscaler for tests: its YAML, an in-process instance on an ephemeral port, and reads of its /actuator.
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { parseConfig } from '../../src/config/index.js'
import { buildAutoscaler, type Autoscaler } from '../../src/autoscaler-server/index.js'
import type { RedisServer } from './redis.js'

interface TapLike { teardown: (fn: () => unknown) => void }

export interface AutoscalerYaml {
  readonly cluster: readonly string[]
  readonly spares?: readonly RedisServer[]
  readonly mode: 'recommend' | 'apply'
  /** Thresholds as YAML flow mappings. */
  readonly scaleOut: string
  readonly scaleIn: string
  readonly interval?: string
  readonly window?: string
  readonly cooldown?: string
  readonly backup?: boolean
  readonly pipeline?: number
}

/**
 * A config whose autoscaler measures every 100 ms over a 200 ms window: tests force a decision with thresholds
 * below (or above) any load an idle test cluster has, rather than with load.
 */
export function autoscalerYaml (options: AutoscalerYaml): string {
  const spares = (options.spares ?? []).map((spare) => `redis://127.0.0.1:${spare.port}`)
  return [
    'server:',
    '  host: 127.0.0.1',
    'redis:',
    `  cluster: [${options.cluster.join(', ')}]`,
    '  keyPrefix: "bw:"',
    'autoscaler:',
    `  mode: ${options.mode}`,
    '  port: 0',
    `  interval: ${options.interval ?? '100ms'}`,
    `  window: ${options.window ?? '200ms'}`,
    `  cooldown: ${options.cooldown ?? '100ms'}`,
    `  scaleOut: ${options.scaleOut}`,
    `  scaleIn: ${options.scaleIn}`,
    `  spareNodes: [${spares.join(', ')}]`,
    `  backup: ${String(options.backup ?? true)}`,
    `  migration: {pipeline: ${options.pipeline ?? 100}, timeout: 5s}`,
    ''
  ].join('\n')
}

/** Any master is above these: an idle redis-server uses some memory. */
export const FORCE_SCALE_OUT = { scaleOut: '{cpu: 100, memory: 0.0001}', scaleIn: '{cpu: 0.00001, memory: 0.00001}' }
/** Every cluster average is below these, and one master fewer stays below scale-out. */
export const FORCE_SCALE_IN = { scaleOut: '{cpu: 100, memory: 100}', scaleIn: '{cpu: 99, memory: 99}' }
/** Nothing crosses these. */
export const NEVER_SCALE = { scaleOut: '{cpu: 100, memory: 100}', scaleIn: '{cpu: 0.00001, memory: 0.00001}' }

export interface RunningAutoscaler {
  readonly url: string
  readonly autoscaler: Autoscaler
  /** /actuator/prometheus, as text. */
  scrape: () => Promise<string>
  /** /actuator/health: its status code and document. */
  health: () => Promise<{ status: number, body: HealthBody }>
}

export interface HealthBody {
  status: string
  components: {
    autoscaler: { status: string, details: { mode: string, role: string, leader: string | null, lastDecision: { action: string, reason: string } | null } }
    redisCluster: { status: string, details: Record<string, unknown> }
  }
}

/** Builds the autoscaler of `yaml` in this process, listens on 127.0.0.1:0 and starts its loop; closed in teardown. */
export async function startAutoscaler (t: TapLike, yaml: string, holder: string): Promise<RunningAutoscaler> {
  const config = parseConfig(yaml, 'autoscaler.yaml', {})
  const autoscaler = buildAutoscaler(config, { logger: pino({ level: 'silent' }), holder })
  let closed: Promise<void> | null = null
  const close = async (): Promise<void> => { closed ??= autoscaler.close(); await closed }
  t.teardown(close)
  await autoscaler.app.listen({ host: '127.0.0.1', port: 0 })
  autoscaler.start()
  const url = `http://127.0.0.1:${(autoscaler.app.server.address() as AddressInfo).port}`
  return {
    url,
    autoscaler: { ...autoscaler, close },
    scrape: async () => await scrapeAt(url),
    health: async () => await healthAt(url)
  }
}

/** The /actuator/prometheus text of the autoscaler at `url` (in this process or its own). */
export async function scrapeAt (url: string): Promise<string> {
  return await (await fetch(`${url}/actuator/prometheus`)).text()
}

/** The /actuator/health status code and document of the autoscaler at `url`. */
export async function healthAt (url: string): Promise<{ status: number, body: HealthBody }> {
  const response = await fetch(`${url}/actuator/health`)
  return { status: response.status, body: await response.json() as HealthBody }
}

/** The value of the sample `series` (a name with its labels as exposed, e.g. `x_total{action="hold"}`), or null when absent. */
export function sampleOf (text: string, series: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
  }
  return null
}

/** How many samples of metric `name` there are (its label sets), for a gauge by node. */
export function seriesCount (text: string, name: string): number {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`)).length
}
