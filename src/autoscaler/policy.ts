// The scale decision (pure): per-master averages over a sliding time window, then scale_out, scale_in or hold, each with its reason.
import type { AutoscalerConfig } from '../config/index.js'
import type { NodeLoad } from './measure.js'

/** The settings the decision reads. */
export type PolicyConfig = Pick<AutoscalerConfig, 'windowMs' | 'cooldownMs' | 'scaleOut' | 'scaleIn' | 'minMasters' | 'maxMasters'>

/** One sample is one interval's accident (a BGSAVE fork, a burst): a decision averages at least this many per master and metric. */
export const MIN_WINDOW_SAMPLES = 2

/** A master's load averaged over the window; null when the window holds no known figure for it. */
export interface NodeAverage {
  readonly node: string
  readonly cpu: number | null
  readonly memory: number | null
  /** Known figures averaged (an unknown CPU across a restart is left out, not counted as 0). */
  readonly cpuSamples: number
  readonly memorySamples: number
  /** How long this node has been watched without a break in tracking: the window is full once this reaches it. */
  readonly coveredMs: number
}

/** Per-master loads over the last `windowMs`, by the autoscaler's clock. */
export class LoadWindow {
  readonly windowMs: number
  readonly #nodes = new Map<string, { sinceMs: number, loads: NodeLoad[] }>()

  constructor (windowMs: number) {
    if (!(windowMs > 0)) throw new RangeError(`expected windowMs above 0, got ${windowMs}`)
    this.windowMs = windowMs
  }

  /** Adds one interval's load; the first load of a node starts its coverage. */
  add (load: NodeLoad): void {
    const entry = this.#nodes.get(load.node)
    if (entry === undefined) this.#nodes.set(load.node, { sinceMs: load.atMs, loads: [load] })
    else entry.loads.push(load)
  }

  /** Forgets every node but these (the current masters): a drained node's load must not count, a new one starts empty. */
  retain (nodes: Iterable<string>): void {
    const keep = new Set(nodes)
    for (const node of this.#nodes.keys()) if (!keep.has(node)) this.#nodes.delete(node)
  }

  /** Forgets everything: after an action the load spreads anew, and figures from before it describe another cluster. */
  clear (): void {
    this.#nodes.clear()
  }

  /** Each node's averages over (nowMs - windowMs, nowMs], sorted by node; older loads are dropped for good. */
  averages (nowMs: number): NodeAverage[] {
    const cutoff = nowMs - this.windowMs
    const result: NodeAverage[] = []
    for (const [node, entry] of this.#nodes) {
      entry.loads = entry.loads.filter((load) => load.atMs > cutoff)
      const cpu = known(entry.loads.map((load) => load.cpu))
      const memory = known(entry.loads.map((load) => load.memory))
      result.push({ node, cpu: mean(cpu), memory: mean(memory), cpuSamples: cpu.length, memorySamples: memory.length, coveredMs: nowMs - entry.sinceMs })
    }
    return result.sort((a, b) => a.node.localeCompare(b.node))
  }
}

const known = (values: ReadonlyArray<number | null>): number[] => values.filter((value): value is number => value !== null)
const mean = (values: readonly number[]): number | null => values.length === 0 ? null : values.reduce((sum, value) => sum + value, 0) / values.length

export interface DecisionInput {
  readonly nowMs: number
  /** One per master of the cluster (LoadWindow.averages after `retain(masters)`). */
  readonly averages: readonly NodeAverage[]
  readonly mastersCount: number
  /** CLUSTER INFO says `cluster_state:ok`. */
  readonly clusterOk: boolean
  /** Slots some master holds IMPORTING or MIGRATING. */
  readonly openSlots: number
  /** null: no action yet in this process's memory of the cluster. */
  readonly lastActionAtMs: number | null
  /** Spare nodes ready to be added. */
  readonly sparesAvailable: number
  readonly config: PolicyConfig
}

/** The master nearest its scale-out thresholds: the highest of cpu / scaleOut.cpu and memory / scaleOut.memory. */
export interface BusiestMaster {
  readonly node: string
  readonly cpu: number
  readonly memory: number
}

/** The cluster average: each master weighs the same, as each holds about the same share of the slots. */
export interface LoadAverage {
  readonly cpu: number
  readonly memory: number
}

/** Why a decision holds; a label for logs and metrics. */
export type HoldRule =
  | 'cluster_not_ok' | 'slot_open' | 'unmeasured' | 'window_short' | 'cooldown'
  | 'max_masters' | 'no_spare' | 'min_masters' | 'would_flap' | 'within_thresholds'

export type Decision =
  | { readonly action: 'scale_out', readonly reason: string, readonly busiest: BusiestMaster, readonly average: LoadAverage }
  | { readonly action: 'scale_in', readonly reason: string, readonly busiest: BusiestMaster, readonly average: LoadAverage }
  /** busiest and average are there once the window is full (every hold from `cooldown` on). */
  | { readonly action: 'hold', readonly rule: HoldRule, readonly reason: string, readonly busiest?: BusiestMaster, readonly average?: LoadAverage }

const pct = (value: number): string => `${value.toFixed(1)}%`
const seconds = (ms: number): string => `${Math.ceil(ms / 1000)}s`

/**
 * The decision, rule by rule, first match wins. Pure: the caller measures, keeps the window, and acts (or, in recommend mode, only reports).
 */
export function decide (input: DecisionInput): Decision {
  const { nowMs, averages, mastersCount, config } = input
  const hold = (rule: HoldRule, reason: string, figures: { busiest?: BusiestMaster, average?: LoadAverage } = {}): Decision =>
    ({ action: 'hold', rule, reason, ...figures })

  // A failed cluster or an open slot means a move is half done (ours after a crash, or an operator's): measuring
  // now would read a cluster in transit, and acting would race the repair. The caller repairs first (like redis-cli --cluster fix).
  if (!input.clusterOk) return hold('cluster_not_ok', 'cluster_state is not ok: no decision until the cluster is healthy')
  if (input.openSlots > 0) return hold('slot_open', `${input.openSlots} slot(s) IMPORTING or MIGRATING: no decision until they are repaired`)

  // A master without figures could be the hot one: deciding without it could scale in under its load.
  if (averages.length === 0 || averages.length !== mastersCount) {
    return hold('unmeasured', `${averages.length} master(s) measured, the cluster has ${mastersCount}`)
  }
  // Averages over the whole window, never one sample: a single busy interval (a BGSAVE fork, a burst) must not move slots.
  for (const node of averages) {
    if (node.coveredMs < config.windowMs || node.cpuSamples < MIN_WINDOW_SAMPLES || node.memorySamples < MIN_WINDOW_SAMPLES) {
      return hold('window_short', `window not full for ${node.node}: ${seconds(node.coveredMs)} of ${seconds(config.windowMs)} watched, ${node.cpuSamples} CPU and ${node.memorySamples} memory sample(s)`)
    }
  }
  const measured = averages as ReadonlyArray<NodeAverage & { cpu: number, memory: number }>
  const busiest = busiestOf(measured, config)
  const average: LoadAverage = {
    cpu: measured.reduce((sum, node) => sum + node.cpu, 0) / measured.length,
    memory: measured.reduce((sum, node) => sum + node.memory, 0) / measured.length
  }
  const figures = { busiest, average }

  // After an action the slots and their load have just moved: wait for the cluster to settle and the window to see it.
  if (input.lastActionAtMs !== null && nowMs - input.lastActionAtMs < config.cooldownMs) {
    return hold('cooldown', `cooldown: ${seconds(config.cooldownMs - (nowMs - input.lastActionAtMs))} left after the last action`, figures)
  }

  // Scale out on the busiest master, not the average: keys are hashed to slots, so one hot master (a hot key, a big
  // slot) is enough to hurt its clients while the average looks fine. Either threshold is enough: CPU saturates the
  // single-threaded server, memory evicts or refuses writes.
  const out = config.scaleOut
  if (busiest.cpu > out.cpu || busiest.memory > out.memory) {
    const why = `${busiest.node} at CPU ${pct(busiest.cpu)} (scale out above ${pct(out.cpu)}), memory ${pct(busiest.memory)} (above ${pct(out.memory)})`
    // A hot master also rules out scaling in, so these hold rather than fall through.
    if (mastersCount >= config.maxMasters) return hold('max_masters', `${why}, but the cluster has ${mastersCount} masters, maxMasters is ${config.maxMasters}`, figures)
    if (input.sparesAvailable < 1) return hold('no_spare', `${why}, but no spare node is available`, figures)
    return { action: 'scale_out', reason: why, ...figures }
  }

  // Scale in on the cluster average, and only when both figures are low: removing a master moves its slots, and so
  // its load, onto all the others, so what matters is the load they share, on both resources.
  const low = config.scaleIn
  if (average.cpu < low.cpu && average.memory < low.memory) {
    const why = `cluster average CPU ${pct(average.cpu)} (scale in below ${pct(low.cpu)}), memory ${pct(average.memory)} (below ${pct(low.memory)})`
    if (mastersCount <= config.minMasters) return hold('min_masters', `${why}, but the cluster has ${mastersCount} masters, minMasters is ${config.minMasters}`, figures)
    // The same load on one master fewer: if that would already cross a scale-out threshold, the next decision would undo this one.
    const after = mastersCount / (mastersCount - 1)
    if (average.cpu * after > out.cpu || average.memory * after > out.memory) {
      return hold('would_flap', `${why}, but on ${mastersCount - 1} masters it would be CPU ${pct(average.cpu * after)}, memory ${pct(average.memory * after)}: above a scale-out threshold`, figures)
    }
    return { action: 'scale_in', reason: why, ...figures }
  }
  return hold('within_thresholds', `busiest ${busiest.node} at CPU ${pct(busiest.cpu)}, memory ${pct(busiest.memory)}; cluster average CPU ${pct(average.cpu)}, memory ${pct(average.memory)}`, figures)
}

/** A master's load relative to its scale-out thresholds: the higher of cpu / scaleOut.cpu and memory / scaleOut.memory. */
export function pressureOf (node: { readonly cpu: number, readonly memory: number }, config: Pick<PolicyConfig, 'scaleOut'>): number {
  return Math.max(node.cpu / config.scaleOut.cpu, node.memory / config.scaleOut.memory)
}

/** The master with the highest load relative to its scale-out thresholds; ties go to the first by node. */
function busiestOf (averages: ReadonlyArray<NodeAverage & { cpu: number, memory: number }>, config: PolicyConfig): BusiestMaster {
  let busiest = averages[0] as NodeAverage & { cpu: number, memory: number }
  for (const node of averages) if (pressureOf(node, config) > pressureOf(busiest, config)) busiest = node
  return { node: busiest.node, cpu: busiest.cpu, memory: busiest.memory }
}
