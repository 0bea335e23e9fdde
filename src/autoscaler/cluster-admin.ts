// Acts on a Redis Cluster: moves slots, adds and drains masters, repairs half-done moves, backs up; the only sender of CLUSTER/MIGRATE admin commands.
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
// The option defaults are the config's, so a library caller and `autoscaler:` agree.
import {
  DEFAULT_MAX_MASTERS, DEFAULT_MIGRATION_PIPELINE, DEFAULT_MIGRATION_TIMEOUT, DEFAULT_MIN_MASTERS, parseDurationMs
} from '../config/index.js'
import { parseClusterNodes, parseInfo, slotsOf, splitAddress, type ClusterNode } from './cluster-nodes.js'
import { drainPlan, rebalancePlan, type SlotMove } from './slot-plan.js'

/** MIGRATE's own timeout (ms): how long the source may wait on the target for one batch; config's `migration.timeout`. */
export const DEFAULT_MIGRATION_TIMEOUT_MS = parseDurationMs(DEFAULT_MIGRATION_TIMEOUT)
/** How long the cluster may take to agree on a new node or to finish a BGSAVE (ms). */
export const DEFAULT_SETTLE_TIMEOUT_MS = 30_000
/** How long a drained master keeps answering before it is reset (ms): twice ioredis' slot refresh interval. */
export const DEFAULT_RETIRE_DELAY_MS = 10_000
/** The setting that turns a master drained of its last slot into a replica, on by default. */
const REPLICA_MIGRATION = 'cluster-allow-replica-migration'
/** How often the cluster is asked again while waiting for it to settle (ms). */
export const DEFAULT_POLL_INTERVAL_MS = 50

/**
 * One node's connection, as ioredis' `Redis` declares `call`, `callBuffer` and the RedisConnection of src/redis
 * declares `close`. Structural, so that the autoscaler never imports ioredis. Its command timeout must exceed
 * `migrationTimeoutMs`, or a slow MIGRATE is abandoned by the client while Redis still runs it.
 */
export interface AdminClient {
  call: (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown>
  /** For the keys of a slot: they are bytes, and may not be UTF-8. */
  callBuffer: (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown>
  close: () => Promise<void>
}

export interface ClusterAdminOptions {
  /** `host:port` of nodes of the cluster; the first that answers is asked for the topology. */
  readonly seeds: readonly string[]
  /** Opens a connection to `host:port`, resolving once it is ready; each address is opened once and kept until `close`. */
  readonly connect: (address: string) => Promise<AdminClient>
  /**
   * Keys per MIGRATE.
   * @default 100
   */
  readonly pipeline?: number
  /**
   * MIGRATE's timeout (ms).
   * @default 5000
   */
  readonly migrationTimeoutMs?: number
  /**
   * How long a new node may take to be known to every master with cluster_state:ok, and a BGSAVE to finish (ms).
   * @default 30000
   */
  readonly settleTimeoutMs?: number
  /**
   * Between two polls while waiting (ms).
   * @default 50
   */
  readonly pollIntervalMs?: number
  /**
   * drainMaster refuses to leave fewer masters.
   * @default 3
   */
  readonly minMasters?: number
  /**
   * addMaster refuses to make more masters.
   * @default 9
   */
  readonly maxMasters?: number
  /**
   * How long a drained master keeps answering (MOVED to the new owners) before it is forgotten and reset (ms): a
   * client refreshes its slot map within this time (ioredis every 5 s, and on each MOVED).
   * @default 10000
   */
  readonly retireDelayMs?: number
  /** Called after each slot moved, with the keys it carried: feeds redis_autoscaler_slots_moved_total and _keys_moved_total. Must not throw. */
  readonly onSlotMoved?: (move: SlotMove & { readonly keys: number }) => void
}

/** The masters and state of the cluster, each master's slots and open slots as it sees them itself. */
export interface ClusterTopology {
  /** `ok` when every master says cluster_state:ok, else the first other state a master reports. */
  readonly state: string
  /** cluster_state as each master reports it, by address. */
  readonly states: Readonly<Record<string, string>>
  /** Every node the cluster knows, masters with their own view of their slots. */
  readonly nodes: readonly ClusterNode[]
  readonly masters: readonly ClusterNode[]
}

export interface MoveSummary {
  readonly slotsMoved: number
  readonly keysMoved: number
}

/**
 * BUSY: another operation runs. REFUSED: it would break a rule (min/max masters, a spare that is not empty).
 * BUSYKEY: MIGRATE found the key on the target. UNSETTLED: the cluster is not ok, a slot is open, or waiting timed out.
 * INCONSISTENT: the cluster contradicts itself. ABORTED: stopped between two slots, as asked (the cluster is whole).
 */
export type ClusterAdminErrorCode = 'BUSY' | 'REFUSED' | 'BUSYKEY' | 'UNSETTLED' | 'INCONSISTENT' | 'ABORTED'

/** How a long operation may be stopped. */
export interface OperationOptions {
  /** Checked before each slot: once aborted, the operation stops with ABORTED, the slots moved so far staying moved. */
  readonly signal?: AbortSignal
}

/** A refusal or a failure of an admin operation; `slot` and `key` name where MIGRATE stopped, when it did. */
export class ClusterAdminError extends Error {
  override readonly name = 'ClusterAdminError'
  constructor (message: string, readonly code: ClusterAdminErrorCode, readonly slot?: number, readonly key?: string, options?: ErrorOptions) {
    super(message, options)
  }
}

/**
 * The admin commands the autoscaler sends. One operation at a time (a second is refused while one runs). Every
 * operation that moves slots first requires cluster_state:ok and no open slot: a move left half-done by a crash is
 * finished by `repair()` before anything else, as `redis-cli --cluster fix` would.
 */
export class ClusterAdmin {
  readonly #connect: (address: string) => Promise<AdminClient>
  readonly #clients = new Map<string, Promise<AdminClient>>()
  readonly #pipeline: number
  readonly #migrationTimeoutMs: number
  readonly #settleTimeoutMs: number
  readonly #pollIntervalMs: number
  readonly #minMasters: number
  readonly #maxMasters: number
  readonly #retireDelayMs: number
  readonly #onSlotMoved: NonNullable<ClusterAdminOptions['onSlotMoved']>
  #seeds: readonly string[]
  #running = false

  constructor (options: ClusterAdminOptions) {
    const {
      seeds, connect, pipeline = DEFAULT_MIGRATION_PIPELINE, migrationTimeoutMs = DEFAULT_MIGRATION_TIMEOUT_MS,
      settleTimeoutMs = DEFAULT_SETTLE_TIMEOUT_MS, pollIntervalMs = DEFAULT_POLL_INTERVAL_MS,
      minMasters = DEFAULT_MIN_MASTERS, maxMasters = DEFAULT_MAX_MASTERS, retireDelayMs = DEFAULT_RETIRE_DELAY_MS, onSlotMoved = () => {}
    } = options
    if (!Array.isArray(seeds) || seeds.length === 0) throw new TypeError(`expected options.seeds to list at least one host:port, got ${JSON.stringify(seeds)}`)
    seeds.forEach((seed) => splitAddress(seed))
    for (const [name, value] of Object.entries({ pipeline, migrationTimeoutMs, settleTimeoutMs, pollIntervalMs, minMasters, maxMasters })) {
      if (!Number.isInteger(value) || value <= 0) throw new TypeError(`expected options.${name} to be a positive integer, got ${String(value)}`)
    }
    if (!Number.isInteger(retireDelayMs) || retireDelayMs < 0) throw new TypeError(`expected options.retireDelayMs to be an integer >= 0, got ${String(retireDelayMs)}`)
    if (maxMasters < minMasters) throw new TypeError(`expected options.maxMasters to be at least options.minMasters (${minMasters}), got ${maxMasters}`)
    this.#seeds = [...seeds]
    this.#connect = connect
    this.#pipeline = pipeline
    this.#migrationTimeoutMs = migrationTimeoutMs
    this.#settleTimeoutMs = settleTimeoutMs
    this.#pollIntervalMs = pollIntervalMs
    this.#minMasters = minMasters
    this.#maxMasters = maxMasters
    this.#retireDelayMs = retireDelayMs
    this.#onSlotMoved = onSlotMoved
  }

  /** The topology as the first seed that answers sees it, with each master's own slots and open slots. */
  async topology (): Promise<ClusterTopology> {
    let seedNodes: ClusterNode[] | undefined
    let lastError: unknown
    for (const seed of this.#seeds) {
      try {
        seedNodes = parseClusterNodes(String(await (await this.#client(seed)).call('CLUSTER', 'NODES')))
        break
      } catch (err) {
        lastError = err
      }
    }
    if (seedNodes === undefined) throw new ClusterAdminError(`no seed answered CLUSTER NODES (${this.#seeds.join(', ')})`, 'UNSETTLED', undefined, undefined, { cause: lastError })
    const views = await Promise.all(seedNodes.filter((node) => node.role === 'master' && reachable(node)).map(async (node) => {
      const client = await this.#client(node.address)
      const [nodes, info] = await Promise.all([client.call('CLUSTER', 'NODES'), client.call('CLUSTER', 'INFO')])
      const own = parseClusterNodes(String(nodes)).find((line) => line.flags.includes('myself')) as ClusterNode
      // The seed's address: a node's own line may lack its IP until a peer has told it.
      return { node: { ...own, address: node.address }, state: String(parseInfo(String(info)).get('cluster_state')) }
    }))
    const masters = views.map((view) => view.node).filter((node) => node.role === 'master')
    const byId = new Map(views.map((view) => [view.node.id, view.node]))
    return {
      state: views.find((view) => view.state !== 'ok')?.state ?? 'ok',
      states: Object.fromEntries(views.map((view) => [view.node.address, view.state])),
      nodes: seedNodes.map((node) => byId.get(node.id) ?? node),
      masters
    }
  }

  /** The INFO sections the load is measured from (server, cpu, memory), as the node at `address` prints them. */
  async nodeInfo (address: string): Promise<string> {
    return String(await (await this.#client(address)).call('INFO', 'server', 'cpu', 'memory'))
  }

  /**
   * The node id of each of `addresses`, in order; null for one that does not answer. Spares are told apart by id, not by
   * address: an operator names a spare as they like (a DNS name), the cluster names it by its IP.
   */
  async nodeIds (addresses: readonly string[]): Promise<Array<string | null>> {
    return await Promise.all(addresses.map(async (address) => {
      try {
        return String(await (await this.#client(address)).call('CLUSTER', 'MYID'))
      } catch {
        return null
      }
    }))
  }

  /**
   * Moves one slot from the master at `source` to the master at `target`, keys and all: SETSLOT IMPORTING on the
   * target, MIGRATING on the source, MIGRATE in batches until the source holds none, then SETSLOT NODE on the
   * target, the source and every other master. A key the target already holds stops it with a BUSYKEY error naming
   * the slot and the key, the slot left open (never REPLACE: that would overwrite the target's value).
   */
  async moveSlot (source: string, target: string, slot: number): Promise<MoveSummary> {
    return this.#exclusive(async () => {
      const topology = await this.topology()
      const from = masterAt(topology, source)
      const to = masterAt(topology, target)
      if (!slotsOf(from.slots).includes(slot)) throw new ClusterAdminError(`master ${source} does not hold slot ${slot}`, 'REFUSED', slot)
      const keys = await this.#move(from, to, slot, topology.masters)
      return { slotsMoved: 1, keysMoved: keys }
    })
  }

  /** Moves slots until every master holds as many as the others, within 1 (`redis-cli --cluster rebalance`). */
  async rebalance (options: OperationOptions = {}): Promise<MoveSummary> {
    return this.#exclusive(async () => {
      const topology = await this.#settled()
      return this.#apply(rebalancePlan(layoutOf(topology), topology.masters.map((node) => node.address)), topology, options.signal)
    })
  }

  /**
   * Joins the empty cluster-enabled redis-server at `spareName` as a master with no slot (call `rebalance` next); a host
   * name is resolved to its IP first. It must hold no key; one that knows other nodes from an earlier life is CLUSTER
   * RESET HARD first (a new id: the old one may be FORGET'ed for 60 s). Resolves once every master lists it and each
   * says cluster_state:ok. A spare that knows nodes of this cluster already (a scale-out cut short) is neither checked
   * nor reset, only met again and waited for.
   * @returns its node id
   */
  async addMaster (spareName: string): Promise<string> {
    return this.#exclusive(async () => {
      // By IP: the cluster names its nodes so, and Redis 7.0's CLUSTER MEET refuses a host name.
      const spare = await ipAddressOf(spareName)
      const topology = await this.#settled(spare)
      const known = topology.nodes.find((node) => node.address === spare)
      if (known !== undefined && known.role !== 'master') throw new ClusterAdminError(`spare ${spare} is in the cluster as a replica`, 'REFUSED')
      const client = await this.#client(spare)
      const own = parseClusterNodes(String(await client.call('CLUSTER', 'NODES')))
      const members = new Set(topology.nodes.map((node) => node.id))
      // A join cut short knows nodes of this cluster already: a reset now would leave its old id behind on every node.
      const joining = known !== undefined || own.some((node) => members.has(node.id))
      if (!joining) {
        if (topology.masters.length >= this.#maxMasters) {
          throw new ClusterAdminError(`the cluster has ${topology.masters.length} masters, maxMasters is ${this.#maxMasters}: not adding ${spare}`, 'REFUSED')
        }
        const keys = Number(await client.call('DBSIZE'))
        if (keys > 0) throw new ClusterAdminError(`spare ${spare} holds ${keys} keys: a spare must be empty`, 'REFUSED')
        if (own.length > 1 || own.some((node) => node.slots.length > 0)) await client.call('CLUSTER', 'RESET', 'HARD')
      }
      // Again when joining: a MEET to a node met already is dropped once its handshake finds the known id.
      const [host, port] = splitAddress(spare)
      await (await this.#client((topology.masters[0] as ClusterNode).address)).call('CLUSTER', 'MEET', host, port)
      const id = String(await client.call('CLUSTER', 'MYID'))
      const addresses = [...topology.masters.map((node) => node.address), spare]
      await this.#waitFor(`every master to list ${spare} (${id}) with cluster_state:ok`, async () => {
        const views = await Promise.all(addresses.map(async (address) => {
          const peer = await this.#client(address)
          return [String(await peer.call('CLUSTER', 'NODES')), String(await peer.call('CLUSTER', 'INFO'))] as const
        }))
        return views.every(([nodes, info]) => parseInfo(info).get('cluster_state') === 'ok' &&
          parseClusterNodes(nodes).some((node) => node.id === id && reachable(node)))
      })
      this.#seeds = addresses
      return id
    })
  }

  /**
   * Empties the master at `name` (a host name is resolved to its IP) and takes it out of the cluster: its slots go to
   * the others (drain plan), then it must hold no slot and no key; after `retireDelayMs`, every other node FORGETs it,
   * and it is CLUSTER RESET HARD, ready to be a spare again. cluster-allow-replica-migration is off on it meanwhile (and
   * restored after the reset), or a master that gave away its last slot turns itself into a replica of the last target.
   * A replica there (a drain cut short, or by an older version) is only forgotten and reset.
   */
  async drainMaster (name: string, options: OperationOptions = {}): Promise<MoveSummary> {
    return this.#exclusive(async () => {
      const address = await ipAddressOf(name)
      const topology = await this.#settled()
      const drained = topology.nodes.find((node) => node.address === address)
      if (drained === undefined) throw new ClusterAdminError(`no node of the cluster at ${address}`, 'REFUSED')
      let summary: MoveSummary = { slotsMoved: 0, keysMoved: 0 }
      const client = await this.#client(address)
      let replicaMigration: string | null = null
      if (drained.role === 'master') {
        if (topology.masters.length <= this.#minMasters) {
          throw new ClusterAdminError(`the cluster has ${topology.masters.length} masters, minMasters is ${this.#minMasters}: not draining ${address}`, 'REFUSED')
        }
        // Drained, it stays a master with no slot rather than becoming a replica: then no slot map lists it, and each
        // client's next refresh drops it (a replica would stay listed, and clients would keep asking it after the reset).
        replicaMigration = String((await client.call('CONFIG', 'GET', REPLICA_MIGRATION) as string[])[1] ?? 'yes')
        await client.call('CONFIG', 'SET', REPLICA_MIGRATION, 'no')
        summary = await this.#apply(drainPlan(layoutOf(topology), address), topology, options.signal)
      }
      const own = parseClusterNodes(String(await client.call('CLUSTER', 'NODES'))).find((node) => node.flags.includes('myself')) as ClusterNode
      const keys = own.role === 'master' ? Number(await client.call('DBSIZE')) : 0
      if (own.slots.length > 0 || keys > 0) {
        throw new ClusterAdminError(`master ${address} still holds ${slotsOf(own.slots).length} slots and ${keys} keys after the drain`, 'INCONSISTENT')
      }
      // Clients whose slot map still names it (it answers them MOVED while it knows the cluster) refresh their map
      // meanwhile; once reset it would answer CLUSTERDOWN, or an empty slot map that empties a client's node list.
      await delay(this.#retireDelayMs)
      const others = topology.nodes.filter((node) => node.id !== drained.id && reachable(node))
      await Promise.all(others.map(async (node) => {
        try {
          await (await this.#client(node.address)).call('CLUSTER', 'FORGET', drained.id)
        } catch (err) {
          // A node that never heard of it (or already forgot it) has nothing to forget.
          if (!/Unknown node/i.test((err as Error).message)) throw err
        }
      }))
      await client.call('CLUSTER', 'RESET', 'HARD')
      if (replicaMigration !== null) await client.call('CONFIG', 'SET', REPLICA_MIGRATION, replicaMigration)
      this.#seeds = others.filter((node) => node.role === 'master').map((node) => node.address)
      return summary
    })
  }

  /**
   * Finishes every move left half-done (a slot MIGRATING on its source or IMPORTING on its target), always forward:
   * when the source still holds keys of the slot, they are migrated first; then SETSLOT NODE gives the slot to the
   * target everywhere. A slot open between more than one pair of nodes is left to a human.
   */
  async repair (): Promise<MoveSummary> {
    return this.#exclusive(async () => {
      const topology = await this.topology()
      const byId = new Map(topology.nodes.map((node) => [node.id, node]))
      const known = (id: string, slot: number): ClusterNode => {
        const node = byId.get(id)
        if (node === undefined) throw new ClusterAdminError(`slot ${slot} is open with node ${id}, which the cluster does not know: fix it by hand`, 'INCONSISTENT', slot)
        return node
      }
      const open = new Map<number, { source: ClusterNode, target: ClusterNode, migrating: boolean, importing: boolean }>()
      const note = (slot: number, source: ClusterNode, target: ClusterNode, side: 'migrating' | 'importing'): void => {
        const seen = open.get(slot)
        if (seen !== undefined && (seen.source.id !== source.id || seen.target.id !== target.id)) {
          throw new ClusterAdminError(`slot ${slot} is open between ${seen.source.address} -> ${seen.target.address} and ${source.address} -> ${target.address}: fix it by hand`, 'INCONSISTENT', slot)
        }
        open.set(slot, { source, target, migrating: false, importing: false, ...seen, [side]: true })
      }
      for (const node of topology.masters) {
        for (const { slot, nodeId } of node.migrating) note(slot, node, known(nodeId, slot), 'migrating')
        for (const { slot, nodeId } of node.importing) note(slot, known(nodeId, slot), node, 'importing')
      }
      let keysMoved = 0
      for (const [slot, { source, target, migrating, importing }] of [...open].sort(([a], [b]) => a - b)) {
        const client = await this.#client(source.address)
        let keys = 0
        if (Number(await client.call('CLUSTER', 'COUNTKEYSINSLOT', slot)) > 0) {
          // Reopen whichever side the crash left closed, so that MIGRATE and the clients' ASK redirections work.
          if (!importing && !slotsOf(target.slots).includes(slot)) await (await this.#client(target.address)).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
          if (!migrating) await client.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
          keys = await this.#migrateKeys(client, target, slot)
        }
        await this.#assign(slot, source, target, topology.masters)
        keysMoved += keys
        this.#onSlotMoved({ slot, source: source.address, target: target.address, keys })
      }
      return { slotsMoved: open.size, keysMoved }
    })
  }

  /** BGSAVE on every master, resolving once each has finished a new snapshot (LASTSAVE moved) with status ok. */
  async backup (): Promise<void> {
    return this.#exclusive(async () => {
      const topology = await this.topology()
      await Promise.all(topology.masters.map(async (node) => {
        const client = await this.#client(node.address)
        const persistence = async (): Promise<ReadonlyMap<string, string>> => parseInfo(String(await client.call('INFO', 'persistence')))
        // rdb_saves counts finished snapshots; LASTSAVE has a resolution of a second, so two saves in one second look like one.
        await this.#waitFor(`no BGSAVE in progress on ${node.address}`, async () => (await persistence()).get('rdb_bgsave_in_progress') === '0')
        const before = Number((await persistence()).get('rdb_saves'))
        await client.call('BGSAVE')
        await this.#waitFor(`BGSAVE to finish on ${node.address}`, async () => {
          const info = await persistence()
          return info.get('rdb_bgsave_in_progress') === '0' && Number(info.get('rdb_saves')) > before
        })
        const status = (await persistence()).get('rdb_last_bgsave_status')
        if (status !== 'ok') throw new ClusterAdminError(`BGSAVE failed on ${node.address} (rdb_last_bgsave_status:${String(status)})`, 'INCONSISTENT')
      }))
    })
  }

  /** Closes every connection opened. */
  async close (): Promise<void> {
    const clients = [...this.#clients.values()]
    this.#clients.clear()
    await Promise.all(clients.map(async (client) => { await (await client.catch(() => null))?.close() }))
  }

  async #exclusive<T> (operation: () => Promise<T>): Promise<T> {
    if (this.#running) throw new ClusterAdminError('another admin operation is running: one at a time', 'BUSY')
    this.#running = true
    try {
      return await operation()
    } finally {
      this.#running = false
    }
  }

  /**
   * The topology, refused unless cluster_state:ok and no slot open.
   * @param joining a master still learning the slot map (a join cut short), whose own state does not count
   */
  async #settled (joining?: string): Promise<ClusterTopology> {
    const topology = await this.topology()
    const state = Object.entries(topology.states).find(([address, state]) => address !== joining && state !== 'ok')?.[1] ?? 'ok'
    if (state !== 'ok') throw new ClusterAdminError(`cluster_state is ${state}, not ok: not moving any slot`, 'UNSETTLED')
    const open = topology.masters.flatMap((node) => [...node.migrating, ...node.importing].map(({ slot }) => slot))
    if (open.length > 0) throw new ClusterAdminError(`slots ${[...new Set(open)].join(', ')} are open: repair() first`, 'UNSETTLED', open[0])
    return topology
  }

  async #apply (plan: readonly SlotMove[], topology: ClusterTopology, signal?: AbortSignal): Promise<MoveSummary> {
    let keysMoved = 0
    for (const [done, move] of plan.entries()) {
      if (signal?.aborted === true) throw new ClusterAdminError(`stopped after ${done} of ${plan.length} slot moves, as asked`, 'ABORTED', undefined, undefined, { cause: signal.reason })
      const keys = await this.#move(masterAt(topology, move.source), masterAt(topology, move.target), move.slot, topology.masters)
      keysMoved += keys
    }
    return { slotsMoved: plan.length, keysMoved }
  }

  async #move (source: ClusterNode, target: ClusterNode, slot: number, masters: readonly ClusterNode[]): Promise<number> {
    const [from, to] = await Promise.all([this.#client(source.address), this.#client(target.address)])
    // Importing first: once the source is migrating, clients are sent to the target with ASK, which must accept them.
    await to.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
    await from.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
    const keys = await this.#migrateKeys(from, target, slot)
    await this.#assign(slot, source, target, masters)
    this.#onSlotMoved({ slot, source: source.address, target: target.address, keys })
    return keys
  }

  /** MIGRATEs the keys of `slot` from `from` to `target` in batches until `from` holds none; resolves how many moved. */
  async #migrateKeys (from: AdminClient, target: ClusterNode, slot: number): Promise<number> {
    const [host, port] = splitAddress(target.address)
    let moved = 0
    for (;;) {
      const keys = await from.callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, this.#pipeline) as Buffer[]
      if (keys.length === 0) return moved
      try {
        // The empty key and KEYS: one round trip per batch. Never REPLACE: a key the target holds is not ours to overwrite.
        await from.call('MIGRATE', host, port, '', 0, this.#migrationTimeoutMs, 'KEYS', ...keys)
      } catch (err) {
        // The source words it `ERR Target instance replied with error: BUSYKEY ...`.
        if (!/\bBUSYKEY\b/.test((err as Error).message)) throw err
        // MIGRATE moved the batch's other keys and kept the busy ones: those still here are them.
        const left = new Set((await from.callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, Number(await from.call('CLUSTER', 'COUNTKEYSINSLOT', slot))) as Buffer[]).map((key) => key.toString('latin1')))
        const busy = keys.filter((key) => left.has(key.toString('latin1'))).map((key) => key.toString())
        throw new ClusterAdminError(`MIGRATE of slot ${slot} to ${target.address} refused: the target already holds key ${busy.map((key) => JSON.stringify(key)).join(', ')} (BUSYKEY); the slot is left open, resolve the key and run repair()`, 'BUSYKEY', slot, busy[0], { cause: err })
      }
      moved += keys.length
      // A short batch was the slot's last: a MIGRATING slot takes no new key (a command on a key it does not hold is
      // sent to the target with ASK), so asking again would only cost a round trip per slot.
      if (keys.length < this.#pipeline) return moved
    }
  }

  /**
   * SETSLOT NODE on the target first (it owns the slot, with a new epoch), then the source (it stops answering ASK),
   * then every other master at once, the order the issue and Redis's resharding guide give.
   * A source giving away its last slot may hear of the target's claim first and turn itself into the target's replica
   * (cluster-allow-replica-migration), refusing SETSLOT: it knows the new owner then, so that refusal is no failure.
   */
  async #assign (slot: number, source: ClusterNode, target: ClusterNode, masters: readonly ClusterNode[]): Promise<void> {
    await (await this.#client(target.address)).call('CLUSTER', 'SETSLOT', slot, 'NODE', target.id)
    const tell = async (node: ClusterNode): Promise<void> => {
      try {
        await (await this.#client(node.address)).call('CLUSTER', 'SETSLOT', slot, 'NODE', target.id)
      } catch (err) {
        if (!/only with masters/i.test((err as Error).message)) throw err
      }
    }
    await tell(source)
    await Promise.all(masters.filter((node) => node.id !== source.id && node.id !== target.id).map(tell))
  }

  async #client (address: string): Promise<AdminClient> {
    let client = this.#clients.get(address)
    if (client === undefined) {
      client = this.#connect(address)
      this.#clients.set(address, client)
    }
    return client
  }

  async #waitFor (what: string, condition: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + this.#settleTimeoutMs
    while (!(await condition())) {
      if (Date.now() > deadline) throw new ClusterAdminError(`timed out after ${this.#settleTimeoutMs} ms waiting for ${what}`, 'UNSETTLED')
      await delay(this.#pollIntervalMs)
    }
  }
}

/** `host:port` with the host resolved to an IP address, as the cluster announces its nodes; an IP is kept as it is. */
async function ipAddressOf (address: string): Promise<string> {
  const [host, port] = splitAddress(address)
  if (isIP(host) !== 0) return address
  // CLUSTER NODES prints an IPv6 address without brackets, so the same form serves both families.
  return `${(await lookup(host)).address}:${port}`
}

/** Whether a node has an address to be reached at: not one a handshake or gossip only named. */
function reachable (node: ClusterNode): boolean {
  return !node.flags.includes('handshake') && !node.flags.includes('noaddr') && !node.address.startsWith(':')
}

function masterAt (topology: ClusterTopology, address: string): ClusterNode {
  const node = topology.masters.find((master) => master.address === address)
  if (node === undefined) throw new ClusterAdminError(`no master of the cluster at ${address} (masters: ${topology.masters.map((master) => master.address).join(', ')})`, 'REFUSED')
  return node
}

function layoutOf (topology: ClusterTopology): Record<string, number[]> {
  return Object.fromEntries(topology.masters.map((node) => [node.address, slotsOf(node.slots)]))
}
