// The autoscaler's journal in Redis: the operation under way and when the last one ended, so that the next leader resumes it and keeps the cooldown.
import type { LeaseClient } from './lease.js'

/** A scale operation as the leader writes it before its first command. */
export interface JournalOperation {
  readonly action: 'scale_out' | 'scale_in'
  /** The spare being added, or the master being drained, as `host:port`. */
  readonly node: string
  /** Wall clock, ms since the epoch. */
  readonly startedAtMs: number
}

export interface JournalState {
  /** An operation begun and not ended: its leader died or stopped in the middle of it. */
  readonly operation: JournalOperation | null
  /** When the last operation ended (wall clock ms), whoever led then: the cooldown runs from it. */
  readonly lastActionAtMs: number | null
  /** An operation field this version cannot read (a hand edit, another version), as found; it counts as none, for the loop to report. */
  readonly unreadable: string | null
}

const OPERATION = 'operation'
const LAST_ACTION = 'lastActionAtMs'

/**
 * One hash in the cluster, written by the leader only. A crash between two writes leaves an operation recorded that
 * the next leader finds and finishes; every operation of ClusterAdmin can be run again where it stopped.
 */
export class Journal {
  readonly #client: LeaseClient
  readonly #key: string

  /** @param key e.g. `${keyPrefix}autoscaler:journal` */
  constructor (client: LeaseClient, key: string) {
    this.#client = client
    this.#key = key
  }

  async read (): Promise<JournalState> {
    const fields = await this.#client.call('HGETALL', this.#key) as string[]
    const map = new Map<string, string>()
    for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i] as string, fields[i + 1] as string)
    const lastAction = Number(map.get(LAST_ACTION))
    const text = map.get(OPERATION)
    const operation = text === undefined ? null : parseOperation(text)
    return {
      operation,
      lastActionAtMs: Number.isFinite(lastAction) && lastAction > 0 ? lastAction : null,
      unreadable: text !== undefined && operation === null ? text : null
    }
  }

  async begin (operation: JournalOperation): Promise<void> {
    await this.#client.call('HSET', this.#key, OPERATION, JSON.stringify(operation))
  }

  /** The operation ended (done, or given up with the cluster whole): it starts the cooldown. */
  async end (atMs: number): Promise<void> {
    await this.#client.call('HSET', this.#key, LAST_ACTION, atMs)
    await this.#client.call('HDEL', this.#key, OPERATION)
  }
}

/** An operation as written by `begin`, or null. */
function parseOperation (text: string): JournalOperation | null {
  try {
    const value = JSON.parse(text) as Partial<JournalOperation>
    if ((value.action === 'scale_out' || value.action === 'scale_in') && typeof value.node === 'string' && typeof value.startedAtMs === 'number') {
      return { action: value.action, node: value.node, startedAtMs: value.startedAtMs }
    }
  } catch {}
  return null
}
