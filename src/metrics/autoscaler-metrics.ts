// AutoscalerMetrics: the autoscaler process's own prom-client registry, fed once per control-loop interval.
import {
  collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type RegistryContentType
} from 'prom-client'
import {
  AUTOSCALER_ACTIONS, AUTOSCALER_METRICS, AUTOSCALER_OPERATIONS, type AutoscalerAction, type AutoscalerOperation
} from './autoscaler-definitions.js'
import type { MetricDefinition } from './definitions.js'
import { Exposition } from './exposition.js'

export interface AutoscalerMetricsOptions {
  /**
   * prom-client's process and Node.js metrics.
   * @default true
   */
  readonly defaultMetrics?: boolean
}

/** `value` when it is a whole number >= 0; prom-client would print a NaN count as `Nan` and keep it for good. */
function wholeCount (value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`expected ${what} to be a whole number >= 0, got ${value}`)
  return value
}

/** `value` when it is a finite number >= 0. */
function finite (value: number, what: string): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`expected ${what} to be a finite number >= 0, got ${value}`)
  return value
}

/**
 * The autoscaler's metrics. It records a few figures per interval of seconds, so prom-client's own Counter, Gauge and
 * Histogram serve as they are (GatewayMetrics keeps its own series for per-request speed).
 */
export class AutoscalerMetrics {
  readonly registry = new Registry<RegistryContentType>()
  private readonly exposition = new Exposition(this.registry)
  private readonly masters: Gauge<string>
  private readonly nodeCpu: Gauge<string>
  private readonly nodeMemory: Gauge<string>
  private readonly decisions: Counter<string>
  private readonly slotsMoved: Counter<string>
  private readonly keysMoved: Counter<string>
  private readonly operation: Histogram<string>
  private readonly leader: Gauge<string>
  private readonly lastAction: Gauge<string>
  /** Nodes with a CPU or memory series, so retainNodes can find the ones that left. */
  private readonly nodes = new Set<string>()

  constructor (options: AutoscalerMetricsOptions = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry })

    // Registration order is exposition order: the table's.
    this.masters = this.gauge(AUTOSCALER_METRICS.masters)
    this.nodeCpu = this.gauge(AUTOSCALER_METRICS.nodeCpu)
    this.nodeMemory = this.gauge(AUTOSCALER_METRICS.nodeMemory)
    this.decisions = this.counter(AUTOSCALER_METRICS.decisions)
    this.slotsMoved = this.counter(AUTOSCALER_METRICS.slotsMoved)
    this.keysMoved = this.counter(AUTOSCALER_METRICS.keysMoved)
    const { operation } = AUTOSCALER_METRICS
    this.operation = new Histogram({
      name: operation.name, help: operation.help, labelNames: operation.labelNames, buckets: [...operation.buckets], registers: [this.registry]
    })
    this.leader = this.gauge(AUTOSCALER_METRICS.leader)
    this.lastAction = this.gauge(AUTOSCALER_METRICS.lastAction)

    // prom-client exports a label-less gauge at 0 from the start; 0 masters or an action in 1970 would be a lie, so
    // these two are absent until measured, and a dashboard shows no data instead.
    this.masters.remove()
    this.lastAction.remove()
    // Every series at zero from the first scrape, as Resilience4j registers its meters, so rate() and absent() see them.
    for (const action of AUTOSCALER_ACTIONS) {
      for (const applied of ['true', 'false']) this.decisions.inc({ action, applied }, 0)
    }
    for (const action of AUTOSCALER_OPERATIONS) this.operation.zero({ action })
  }

  /** Masters that serve slots, as the last measurement found them. */
  setMasters (count: number): void {
    this.masters.set(wholeCount(count, 'masters'))
  }

  /**
   * Node `node`'s load over the last interval, in percent. null: unknown for that interval (its first sample, a
   * restart), and its series is removed rather than left at a figure that no longer holds.
   */
  setNodeLoad (node: string, cpuPercent: number | null, memoryPercent: number | null): void {
    // Both checked before either is written: a refused call changes nothing.
    if (cpuPercent !== null) finite(cpuPercent, 'cpuPercent')
    if (memoryPercent !== null) finite(memoryPercent, 'memoryPercent')
    if (cpuPercent === null) this.nodeCpu.remove({ node })
    else this.nodeCpu.set({ node }, cpuPercent)
    if (memoryPercent === null) this.nodeMemory.remove({ node })
    else this.nodeMemory.set({ node }, memoryPercent)
    if (cpuPercent === null && memoryPercent === null) this.nodes.delete(node)
    else this.nodes.add(node)
  }

  /** Keeps the node series of `nodes` only: a master that left the cluster (scaled in, failed over) stops being reported. */
  retainNodes (nodes: Iterable<string>): void {
    const keep = new Set(nodes)
    for (const node of this.nodes) {
      if (keep.has(node)) continue
      this.nodeCpu.remove({ node })
      this.nodeMemory.remove({ node })
      this.nodes.delete(node)
    }
  }

  /** One decision of the scale policy; `applied`: it was acted on (false: a dry run, a follower, or a hold). */
  countDecision (action: AutoscalerAction, applied: boolean): void {
    this.decisions.inc({ action, applied: String(applied) })
  }

  /** `count` hash slots migrated. */
  countSlotsMoved (count: number): void {
    this.slotsMoved.inc(wholeCount(count, 'the slots moved'))
  }

  /** `count` keys migrated. */
  countKeysMoved (count: number): void {
    this.keysMoved.inc(wholeCount(count, 'the keys moved'))
  }

  /** A scale operation finished (or failed) after `seconds`. */
  observeOperation (action: AutoscalerOperation, seconds: number): void {
    this.operation.observe({ action }, finite(seconds, 'seconds'))
  }

  /** Whether this process holds the leader lease. */
  setLeader (leader: boolean): void {
    this.leader.set(leader ? 1 : 0)
  }

  /** When the last scale operation was applied, in seconds since the Unix epoch. */
  setLastAction (epochSeconds: number): void {
    this.lastAction.set(finite(epochSeconds, 'epochSeconds'))
  }

  /** The content type of `metrics(openMetrics)`. */
  contentType (openMetrics: boolean): string {
    return this.exposition.contentType(openMetrics)
  }

  /** Every metric in the Prometheus text format 0.0.4, or OpenMetrics 1.0.0. */
  async metrics (openMetrics = false): Promise<string> {
    return await this.exposition.render(openMetrics)
  }

  private gauge (def: MetricDefinition): Gauge<string> {
    return new Gauge({ name: def.name, help: def.help, labelNames: def.labelNames, registers: [this.registry] })
  }

  private counter (def: MetricDefinition): Counter<string> {
    return new Counter({ name: def.name, help: def.help, labelNames: def.labelNames, registers: [this.registry] })
  }
}
