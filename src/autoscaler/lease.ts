// The autoscaler's leader lease: one key in Redis, set NX PX by the leader and renewed each interval, so that one autoscaler acts at a time.
import { performance } from 'node:perf_hooks'

/**
 * Renews the lease only while it still names us: a check and a PEXPIRE in one script, so that no other instance can
 * take the key between the two. 1 when renewed, 0 when the key names another holder or is gone.
 */
const RENEW_SCRIPT = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
/** Deletes the lease only while it still names us: a DEL of a key another instance took over would hand it a second leader. */
const RELEASE_SCRIPT = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"

/**
 * The one command the lease sends, as ioredis' `Redis` and `Cluster` both declare `call`. Structural, so that the
 * autoscaler never imports ioredis. EVAL names its one key, so a Cluster client sends it to the key's master.
 */
export interface LeaseClient {
  call: (command: string, ...args: Array<string | number>) => Promise<unknown>
}

export interface LeaseOptions {
  readonly client: LeaseClient
  /** The key every candidate competes for, e.g. `${keyPrefix}autoscaler:leader`. */
  readonly key: string
  /** This instance's id, stored as the key's value: standbys read it to say who leads. */
  readonly holder: string
  /**
   * How long the lease lasts without a renewal (ms): a few renewal intervals, so that one late renewal does not lose it,
   * while a leader that died unannounced is replaced within this time.
   */
  readonly ttlMs: number
  /**
   * A monotonic clock in ms, for when our own view of the lease runs out. Monotonic so that a wall clock stepped back
   * (NTP) cannot stretch our leadership past the key's own expiry in Redis.
   * @default performance.now
   */
  readonly now?: () => number
}

/**
 * One candidate's hold on the leader key. Whether we lead is decided on our side as well as in Redis: we lead for
 * `ttlMs` from the moment we sent the last command that set or renewed the key, and no longer, whatever happens to
 * Redis or to the connection meanwhile. Redis started the key's ttl no earlier than that moment, so our view of the
 * lease always ends before the key does, and no standby can acquire while we still believe we lead.
 */
export class Lease {
  readonly #client: LeaseClient
  readonly #key: string
  readonly #holder: string
  readonly #ttlMs: number
  readonly #now: () => number
  /** When the command behind the last success was sent; null while we do not hold the lease. */
  #renewedAt: number | null = null
  /** Bumped on each release: a renewal answered after it must not make us leader again (the key is being deleted). */
  #epoch = 0

  constructor (options: LeaseOptions) {
    const { client, key, holder, ttlMs, now = () => performance.now() } = options
    if (typeof client?.call !== 'function') throw new TypeError(`expected options.client to have a call() method, got ${typeof client}`)
    if (typeof key !== 'string' || key === '') throw new TypeError(`expected options.key to be a non-empty string, got ${JSON.stringify(key)}`)
    if (typeof holder !== 'string' || holder === '') throw new TypeError(`expected options.holder to be a non-empty string, got ${JSON.stringify(holder)}`)
    // PX takes an integer.
    if (!Number.isInteger(ttlMs) || ttlMs <= 0) throw new TypeError(`expected options.ttlMs to be a positive integer of milliseconds, got ${String(ttlMs)}`)
    this.#client = client
    this.#key = key
    this.#holder = holder
    this.#ttlMs = ttlMs
    this.#now = now
  }

  /**
   * Whether we lead now: the last acquire or renewal succeeded less than `ttlMs` ago. A renewal that fails with an
   * error (Redis away, a timeout) changes nothing at once, since the key may still be ours, but once `ttlMs` has passed
   * since the last success the key may have expired and been taken: we stop leading then, without asking Redis.
   */
  get isLeader (): boolean {
    return this.#renewedAt !== null && this.#now() - this.#renewedAt < this.#ttlMs
  }

  /**
   * Takes the lease if nobody holds it (SET NX PX), or renews it if we already do (a restarted loop, or a standby's
   * every-interval attempt that finds itself leader already). Resolves false when another holder has it. A Redis
   * error rejects and leaves `isLeader` to run out on its own.
   */
  async tryAcquire (): Promise<boolean> {
    const epoch = this.#epoch
    const sentAt = this.#now()
    const reply = await this.#client.call('SET', this.#key, this.#holder, 'NX', 'PX', this.#ttlMs)
    if (reply === 'OK') return this.#succeeded(epoch, sentAt)
    return this.renew()
  }

  /**
   * Extends the lease by `ttlMs` if it still names us. False means we lost it (it expired and another took it, or it
   * is gone): we stop leading at once. A Redis error rejects and leaves `isLeader` to run out on its own.
   */
  async renew (): Promise<boolean> {
    const epoch = this.#epoch
    const sentAt = this.#now()
    const renewed = await this.#client.call('EVAL', RENEW_SCRIPT, 1, this.#key, this.#holder, this.#ttlMs)
    if (Number(renewed) === 1) return this.#succeeded(epoch, sentAt)
    this.#renewedAt = null
    return false
  }

  /**
   * Stops leading and deletes the key if it still names us (on SIGTERM), so that a standby takes over at its next
   * attempt instead of waiting out the ttl. We stop leading before Redis answers, and even if it fails: a key left
   * behind expires within `ttlMs`.
   */
  async release (): Promise<void> {
    this.#epoch++
    this.#renewedAt = null
    await this.#client.call('EVAL', RELEASE_SCRIPT, 1, this.#key, this.#holder)
  }

  /** Who holds the lease now, as Redis says (for a standby's health and metrics), or null when nobody does. */
  async holderOf (): Promise<string | null> {
    const value = await this.#client.call('GET', this.#key)
    return value == null ? null : String(value)
  }

  #succeeded (epoch: number, sentAt: number): boolean {
    // A release while the command was in flight wins: the key is deleted, or about to be.
    if (epoch !== this.#epoch) return false
    this.#renewedAt = sentAt
    return true
  }
}
