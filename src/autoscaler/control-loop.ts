// The autoscaler's control loop: every interval, keep the lease, measure each master, decide, and act as leader in apply mode.
import type { AutoscalerConfig, AutoscalerMode } from '../config/index.js'
import { ClusterAdminError, type ClusterAdmin, type ClusterTopology } from './cluster-admin.js'
import type { ClusterNode } from './cluster-nodes.js'
import type { Journal, JournalOperation } from './journal.js'
import type { Lease } from './lease.js'
import { loadOf, sampleFromInfo, type NodeSample } from './measure.js'
import { decide, LoadWindow, pressureOf, type Decision, type NodeAverage } from './policy.js'

/** What the loop reports, as AutoscalerMetrics of src/metrics offers it (structural: the autoscaler does not import metrics/). */
export interface LoopMetrics {
  setMasters: (count: number) => void
  setNodeLoad: (node: string, cpuPercent: number | null, memoryPercent: number | null) => void
  retainNodes: (nodes: Iterable<string>) => void
  countDecision: (action: Decision['action'], applied: boolean) => void
  observeOperation: (action: JournalOperation['action'], seconds: number) => void
  setLeader: (leader: boolean) => void
  setLastAction: (epochSeconds: number) => void
}

/** pino's calling convention, the part the loop uses. */
export interface LoopLogger {
  info: (fields: object, message: string) => void
  warn: (fields: object, message: string) => void
  error: (fields: object, message: string) => void
}

export interface ControlLoopOptions {
  readonly config: AutoscalerConfig
  readonly admin: Pick<ClusterAdmin, 'topology' | 'nodeInfo' | 'nodeIds' | 'repair' | 'backup' | 'addMaster' | 'rebalance' | 'drainMaster'>
  readonly lease: Pick<Lease, 'tryAcquire' | 'renew' | 'release' | 'isLeader' | 'holderOf'>
  readonly journal: Pick<Journal, 'read' | 'begin' | 'end'>
  /** `autoscaler.spareNodes` as `host:port`. */
  readonly spares: readonly string[]
  readonly metrics: LoopMetrics
  readonly log: LoopLogger
  /**
   * Wall clock in ms: samples, the window and the cooldown (shared with other instances through the journal).
   * @default Date.now
   */
  readonly now?: () => number
}

/** What /actuator/health shows of the loop. */
export interface LoopStatus {
  readonly mode: AutoscalerMode
  readonly role: 'leader' | 'standby'
  /** Who holds the lease, as last read; null: nobody, or not read yet. */
  readonly leader: string | null
  /** The cluster as the last measurement saw it; null before the first one that reached it. */
  readonly cluster: { readonly state: string, readonly masters: number, readonly openSlots: number } | null
  /** Why the last interval could not measure the cluster, or null when it could. */
  readonly lastError: string | null
  readonly lastDecision: { readonly action: Decision['action'], readonly reason: string, readonly atMs: number } | null
  readonly operation: JournalOperation | null
}

/**
 * Runs `tick` every `intervalMs` (never two at once, the next one `intervalMs` after the last began) and keeps the
 * lease on a timer of its own: a scale operation takes minutes, and the lease must be renewed meanwhile. Losing the
 * lease stops the operation between two slots, so that two leaders never move slots at once.
 */
export class ControlLoop {
  readonly #config: AutoscalerConfig
  readonly #admin: ControlLoopOptions['admin']
  readonly #lease: ControlLoopOptions['lease']
  readonly #journal: ControlLoopOptions['journal']
  readonly #spares: readonly string[]
  readonly #metrics: LoopMetrics
  readonly #log: LoopLogger
  readonly #now: () => number
  readonly #window: LoadWindow
  /** Each master's previous sample: CPU% is measured between two. */
  readonly #samples = new Map<string, NodeSample>()
  #lastActionAtMs: number | null = null
  #status: Omit<LoopStatus, 'role'>
  /** Aborts the operation under way; replaced for each operation. */
  #operation: AbortController | null = null
  #tickTimer: NodeJS.Timeout | null = null
  #leaseTimer: NodeJS.Timeout | null = null
  #ticking: Promise<void> | null = null
  #keeping: Promise<void> | null = null
  #stopped = false

  constructor (options: ControlLoopOptions) {
    const { config, admin, lease, journal, spares, metrics, log, now = Date.now } = options
    this.#config = config
    this.#admin = admin
    this.#lease = lease
    this.#journal = journal
    this.#spares = spares
    this.#metrics = metrics
    this.#log = log
    this.#now = now
    this.#window = new LoadWindow(config.windowMs)
    this.#status = { mode: config.mode, leader: null, cluster: null, lastError: null, lastDecision: null, operation: null }
    metrics.setLeader(false)
  }

  /** The role is the lease's own view, which runs out on time even when no renewal answers. */
  get status (): LoopStatus {
    return { ...this.#status, role: this.#lease.isLeader ? 'leader' : 'standby' }
  }

  /** Tries for the lease and runs the first interval at once, then both every `intervalMs`. */
  start (): void {
    if (this.#tickTimer !== null || this.#stopped) return
    const keep = (): void => {
      this.#keeping ??= this.keepLease().finally(() => { this.#keeping = null })
    }
    keep()
    this.#leaseTimer = setInterval(keep, this.#config.intervalMs)
    const run = (): void => {
      const began = this.#now()
      // After the lease attempt under way, so that the first interval already knows whether it leads.
      this.#ticking = (async () => {
        await this.#keeping
        await this.tick()
      })().finally(() => {
        this.#ticking = null
        if (!this.#stopped) this.#tickTimer = setTimeout(run, Math.max(0, this.#config.intervalMs - (this.#now() - began)))
      })
    }
    run()
  }

  /**
   * Stops: no new interval, the operation under way stops after its current slot (the cluster is whole between two
   * slots), then the lease is released so that a standby takes over at its next attempt.
   */
  async stop (): Promise<void> {
    this.#stopped = true
    if (this.#tickTimer !== null) clearTimeout(this.#tickTimer)
    if (this.#leaseTimer !== null) clearInterval(this.#leaseTimer)
    this.#operation?.abort(new Error('the autoscaler is stopping'))
    await this.#ticking
    await this.#keeping
    try {
      await this.#lease.release()
    } catch (err) {
      this.#log.warn({ err }, 'could not release the leader lease: a standby takes over once it expires')
    }
    this.#metrics.setLeader(false)
  }

  /** Takes the lease when free, or renews ours; a lost lease stops the operation under way. */
  async keepLease (): Promise<void> {
    const wasLeader = this.#lease.isLeader
    try {
      if (wasLeader) await this.#lease.renew()
      else await this.#lease.tryAcquire()
    } catch (err) {
      // Redis away: we keep leading until our own view of the lease runs out (Lease.isLeader), not a moment longer.
      this.#log.warn({ err }, 'could not reach Redis for the leader lease')
    }
    const leader = this.#lease.isLeader
    if (leader !== wasLeader) this.#log.info({ leader }, leader ? 'took the leader lease: this autoscaler decides' : 'lost the leader lease: standing by')
    if (!leader) this.#operation?.abort(new Error('the leader lease was lost'))
    this.#metrics.setLeader(leader)
    let holder = this.#status.leader
    try {
      holder = await this.#lease.holderOf()
    } catch {}
    this.#status = { ...this.#status, leader: holder }
  }

  /**
   * One interval: measure every master serving slots; as leader, repair open slots, then finish an operation a
   * previous leader left, then decide, and in apply mode act. Never rejects: what fails is logged and shown in the status.
   */
  async tick (): Promise<void> {
    let topology: ClusterTopology
    let masters: ClusterNode[]
    try {
      topology = await this.#admin.topology()
      masters = topology.masters.filter((node) => node.slots.length > 0)
      await this.#measure(masters)
    } catch (err) {
      this.#status = { ...this.#status, lastError: (err as Error).message }
      this.#log.warn({ err }, 'could not measure the cluster: no decision this interval')
      return
    }
    const openSlots = new Set(topology.masters.flatMap((node) => [...node.migrating, ...node.importing].map(({ slot }) => slot))).size
    this.#status = { ...this.#status, lastError: null, cluster: { state: topology.state, masters: masters.length, openSlots } }
    if (!this.#lease.isLeader) return
    try {
      await this.#lead(topology, masters, openSlots)
    } catch (err) {
      this.#log.error({ err }, 'the leader interval failed')
    }
  }

  async #measure (masters: readonly ClusterNode[]): Promise<void> {
    const atMs = this.#now()
    const infos = await Promise.all(masters.map(async (node) => await this.#admin.nodeInfo(node.address)))
    const addresses = masters.map((node) => node.address)
    this.#window.retain(addresses)
    this.#metrics.retainNodes(addresses)
    for (const address of [...this.#samples.keys()]) if (!addresses.includes(address)) this.#samples.delete(address)
    masters.forEach((node, i) => {
      const sample = sampleFromInfo(node.address, atMs, infos[i] as string)
      const load = loadOf(this.#samples.get(node.address), sample)
      this.#samples.set(node.address, sample)
      this.#window.add(load)
      this.#metrics.setNodeLoad(node.address, load.cpu, load.memory)
    })
    this.#metrics.setMasters(masters.length)
  }

  async #lead (topology: ClusterTopology, masters: readonly ClusterNode[], openSlots: number): Promise<void> {
    const apply = this.#config.mode === 'apply'
    const journal = await this.#journal.read()
    if (journal.unreadable !== null) this.#log.warn({ operation: journal.unreadable }, 'the journal holds an operation this version cannot read: ignored')
    if (journal.lastActionAtMs !== null && (this.#lastActionAtMs === null || journal.lastActionAtMs > this.#lastActionAtMs)) this.#lastActionAtMs = journal.lastActionAtMs
    if (apply && openSlots > 0 && topology.state === 'ok') {
      // A move cut short (a crash, a kill -9): finished forward before anything else, as redis-cli --cluster fix would.
      this.#log.warn({ openSlots }, 'slots left open by an interrupted move: repairing them before any decision')
      const repaired = await this.#admin.repair()
      this.#log.info({ ...repaired }, 'open slots repaired')
      return
    }
    if (apply && journal.operation !== null && topology.state === 'ok' && openSlots === 0) {
      await this.#resume(journal.operation)
      return
    }
    const nowMs = this.#now()
    const spareIds = await this.#admin.nodeIds(this.#spares)
    const members = new Set(topology.nodes.map((node) => node.id))
    const spares = this.#spares.filter((_address, i) => spareIds[i] != null && !members.has(spareIds[i] as string))
    const averages = this.#window.averages(nowMs)
    const decision = decide({
      nowMs,
      averages,
      mastersCount: masters.length,
      clusterOk: topology.state === 'ok',
      openSlots,
      lastActionAtMs: this.#lastActionAtMs,
      sparesAvailable: spares.length,
      config: this.#config
    })
    const applied = apply && decision.action !== 'hold'
    this.#metrics.countDecision(decision.action, applied)
    this.#status = { ...this.#status, lastDecision: { action: decision.action, reason: decision.reason, atMs: nowMs } }
    const fields = { action: decision.action, rule: decision.action === 'hold' ? decision.rule : undefined, mode: this.#config.mode }
    if (decision.action === 'hold') {
      this.#log.info(fields, `hold: ${decision.reason}`)
      return
    }
    if (!apply) {
      this.#log.info(fields, `recommend ${decision.action} (recommend mode: nothing changed): ${decision.reason}`)
      return
    }
    this.#log.info(fields, `${decision.action}: ${decision.reason}`)
    // A master that was a spare is drained first: it goes back to the spares, while a startup node of redis.cluster
    // drained would sit idle, never added again (a spare is not a startup node), and stay in every client's seed list.
    const fromSpares = masters.filter((node) => spareIds.includes(node.id))
    const node = decision.action === 'scale_out'
      ? spares[0] as string
      : leastLoaded(averages, fromSpares.length > 0 ? fromSpares : masters, this.#config)
    await this.#run({ action: decision.action, node, startedAtMs: nowMs })
  }

  /** Finishes an operation a previous leader began: every step of it can be run again where it stopped. */
  async #resume (operation: JournalOperation): Promise<void> {
    this.#log.warn({ ...operation }, `resuming the ${operation.action} of ${operation.node} a previous leader left unfinished`)
    await this.#run(operation, true)
  }

  async #run (operation: JournalOperation, resumed = false): Promise<void> {
    const controller = new AbortController()
    this.#operation = controller
    this.#status = { ...this.#status, operation }
    const began = this.#now()
    try {
      if (!resumed) await this.#journal.begin(operation)
      // "Back up before changing Redis": a snapshot of every master before the first slot moves.
      if (this.#config.backup) await this.#admin.backup()
      if (operation.action === 'scale_out') {
        await this.#admin.addMaster(operation.node)
        await this.#admin.rebalance({ signal: controller.signal })
      } else {
        await this.#admin.drainMaster(operation.node, { signal: controller.signal })
      }
      const endedAtMs = this.#now()
      await this.#journal.end(endedAtMs)
      this.#lastActionAtMs = endedAtMs
      // The load moved with the slots: figures from before describe another cluster.
      this.#window.clear()
      this.#samples.clear()
      this.#metrics.observeOperation(operation.action, (endedAtMs - began) / 1000)
      this.#metrics.setLastAction(endedAtMs / 1000)
      this.#log.info({ ...operation, seconds: (endedAtMs - began) / 1000 }, `${operation.action} of ${operation.node} done`)
    } catch (err) {
      const code = err instanceof ClusterAdminError ? err.code : null
      if (code === 'REFUSED') {
        // It cannot go on as it is (a spare that holds keys, a node gone, a limit reached): retrying would fail alike.
        this.#log.error({ err, ...operation }, `${operation.action} of ${operation.node} refused: given up, the cluster is whole`)
        await this.#journal.end(this.#now())
      } else if (code === 'ABORTED') {
        // Left in the journal: the next leader finishes it.
        this.#log.warn({ err, ...operation }, `${operation.action} of ${operation.node} stopped between two slots; the next leader resumes it`)
      } else {
        this.#log.error({ err, ...operation }, `${operation.action} of ${operation.node} failed; it is resumed next interval`)
      }
    } finally {
      this.#operation = null
      this.#status = { ...this.#status, operation: null }
    }
  }
}

/** The master with the lowest window load relative to its scale-out thresholds: the one whose slots are cheapest to spread. */
function leastLoaded (averages: readonly NodeAverage[], masters: readonly ClusterNode[], config: AutoscalerConfig): string {
  const pressure = new Map(averages.map((node) => [node.node, pressureOf({ cpu: node.cpu ?? 0, memory: node.memory ?? 0 }, config)]))
  let best = masters[0] as ClusterNode
  for (const node of masters) if ((pressure.get(node.address) ?? Infinity) < (pressure.get(best.address) ?? Infinity)) best = node
  return best.address
}
