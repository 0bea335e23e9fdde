// The in-process byte store: an LRU of Buffers with per-entry expiry and an injectable clock; one gateway process, not shared.
import { performance } from 'node:perf_hooks'
import type { CacheStore, StoreHealth } from './store.js'

/** Entries kept before the least recently used is evicted. */
export const DEFAULT_MEMORY_MAX_ENTRIES = 10_000

/** What a lock key holds (Redis stores the same bytes), so locks and entries share one keyspace in both stores. */
const LOCK_VALUE = Buffer.from('1')

export interface MemoryStoreOptions {
  /**
   * Entries kept (locks count too); storing one more evicts the least recently used, where a get or a set is a use.
   * @default 10000
   */
  readonly maxEntries?: number
  /**
   * The clock that expiry is measured on, in ms. Tests pass a fake one; the store starts no timer.
   * @default Date.now
   */
  readonly now?: () => number
  /**
   * Called after each get, set and delete with its duration in seconds (and its error, if it failed): feeds
   * `cache_operation_latency_seconds{operation,store}` and `cache_errors_total{operation}`. `lock` reports as `set` and
   * `unlock` as `delete` (the commands they are in Redis); `purge` is not reported. Must not throw.
   */
  readonly onOperation?: (operation: 'get' | 'set' | 'delete', seconds: number, error?: Error) => void
}

interface Entry {
  readonly value: Buffer
  /** The clock's time at which it reads as absent: an entry set at t for ttlMs lives while now < t + ttlMs. */
  readonly expiresAt: number
}

/**
 * An LRU over a Map, whose iteration order is insertion order: a use re-inserts the key, so the first key is always the
 * least recently used. Expired entries are removed when they are read, purged, or evicted as the oldest; nothing sweeps.
 * Values are kept as given, not copied: a caller must not modify a Buffer after storing it or once it got it back.
 */
export class MemoryStore implements CacheStore {
  readonly kind = 'memory'
  readonly maxEntries: number
  readonly #entries = new Map<string, Entry>()
  readonly #now: () => number
  readonly #onOperation: MemoryStoreOptions['onOperation']

  constructor (options: MemoryStoreOptions = {}) {
    const maxEntries = options.maxEntries ?? DEFAULT_MEMORY_MAX_ENTRIES
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`expected options.maxEntries to be a positive integer, got ${String(maxEntries)}`)
    }
    this.maxEntries = maxEntries
    this.#now = options.now ?? Date.now
    this.#onOperation = options.onOperation
  }

  /** Entries held now, expired ones not yet removed included. */
  get size (): number {
    return this.#entries.size
  }

  async get (keys: readonly string[]): Promise<Array<Buffer | null>> {
    return this.peek(keys)
  }

  /** `get`, synchronously: everything is in this process. */
  peek (keys: readonly string[]): Array<Buffer | null> {
    const started = performance.now()
    const now = this.#now()
    const values = keys.map((key) => this.#read(key, now))
    this.#report('get', started)
    return values
  }

  async set (key: string, value: Buffer, ttlMs: number): Promise<void> {
    const ttl = ttlMillis(ttlMs)
    const started = performance.now()
    this.#write(key, value, this.#now() + ttl)
    this.#report('set', started)
  }

  async delete (keys: readonly string[]): Promise<void> {
    const started = performance.now()
    for (const key of keys) this.#entries.delete(key)
    this.#report('delete', started)
  }

  async lock (key: string, ttlMs: number): Promise<boolean> {
    const ttl = ttlMillis(ttlMs)
    const started = performance.now()
    const now = this.#now()
    const taken = this.#read(key, now) === null
    if (taken) this.#write(key, LOCK_VALUE, now + ttl)
    this.#report('set', started)
    return taken
  }

  async unlock (key: string): Promise<void> {
    await this.delete([key])
  }

  async purge (prefix: string, filter?: (value: Buffer) => boolean): Promise<number> {
    const now = this.#now()
    let purged = 0
    // Deleting the key being visited is safe in a Map iteration.
    for (const [key, entry] of this.#entries) {
      if (!key.startsWith(prefix)) continue
      if (entry.expiresAt <= now) {
        this.#entries.delete(key)
        continue
      }
      if (filter !== undefined && !filter(entry.value)) continue
      this.#entries.delete(key)
      purged++
    }
    return purged
  }

  health (): StoreHealth {
    return { status: 'UP', details: { entries: this.#entries.size, maxEntries: this.maxEntries } }
  }

  async close (): Promise<void> {
    this.#entries.clear()
  }

  #read (key: string, now: number): Buffer | null {
    const entry = this.#entries.get(key)
    if (entry === undefined) return null
    this.#entries.delete(key)
    if (entry.expiresAt <= now) return null
    this.#entries.set(key, entry)
    return entry.value
  }

  #write (key: string, value: Buffer, expiresAt: number): void {
    this.#entries.delete(key)
    this.#entries.set(key, { value, expiresAt })
    if (this.#entries.size > this.maxEntries) {
      // The Map holds more than maxEntries (at least 1) here, so it has a first key.
      this.#entries.delete(this.#entries.keys().next().value as string)
    }
  }

  #report (operation: 'get' | 'set' | 'delete', started: number): void {
    this.#onOperation?.(operation, (performance.now() - started) / 1000)
  }
}

/**
 * The TTL as whole milliseconds, rounded up (Redis' PX takes an integer). A TTL that is not positive is a caller's bug,
 * not a store failure: it rejects before anything is stored, and the store stays UP.
 */
function ttlMillis (ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`expected ttlMs to be a positive finite number of milliseconds, got ${String(ttlMs)}`)
  }
  return Math.ceil(ttlMs)
}
