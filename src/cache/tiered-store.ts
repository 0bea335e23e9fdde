// An in-process tier in front of a shared store: repeat reads within the tier's ttl never leave the process.
import { MemoryStore, type MemoryStoreOptions } from './memory-store.js'
import type { CacheStore, StoreHealth } from './store.js'

export interface TieredStoreOptions extends Pick<MemoryStoreOptions, 'now' | 'onOperation'> {
  /** Keys the tier keeps, values and known absences each. */
  readonly maxEntries: number
  /** How long the tier answers for a key before the shared store is asked again, in ms. */
  readonly ttlMs: number
}

/**
 * Reads go to the tier first and to `far` when it does not know every key, remembering what `far` answered (an
 * absence too: an entry's invalidation marker is usually absent, and must not send every read to `far`) for `ttlMs`.
 * Writes and deletes go to both. Another instance's write is seen here at most `ttlMs` late: the price of the tier.
 */
export class TieredStore implements CacheStore {
  readonly kind: CacheStore['kind']
  readonly #near: MemoryStore
  readonly #absent: MemoryStore
  readonly #far: CacheStore
  readonly #ttlMs: number

  constructor (far: CacheStore, options: TieredStoreOptions) {
    this.kind = far.kind
    this.#far = far
    this.#ttlMs = options.ttlMs
    this.#near = new MemoryStore({ maxEntries: options.maxEntries, now: options.now, onOperation: options.onOperation })
    this.#absent = new MemoryStore({ maxEntries: options.maxEntries, now: options.now })
  }

  async get (keys: readonly string[]): Promise<Array<Buffer | null>> {
    const known = this.peek(keys)
    if (known !== undefined) return known
    const far = await this.#far.get(keys)
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string
      const value = far[i] ?? null
      if (value === null) await this.#absent.set(key, Buffer.alloc(0), this.#ttlMs)
      else await this.#near.set(key, value, this.#ttlMs)
    }
    return far
  }

  /** What the tier knows of every key, or undefined when the shared store must be asked. */
  peek (keys: readonly string[]): Array<Buffer | null> | undefined {
    const near = this.#near.peek(keys)
    const absent = this.#absent.peek(keys)
    return keys.every((_key, i) => near[i] !== null || absent[i] !== null) ? near : undefined
  }

  async set (key: string, value: Buffer, ttlMs: number): Promise<void> {
    await this.#absent.delete([key])
    await this.#near.set(key, value, Math.min(ttlMs, this.#ttlMs))
    await this.#far.set(key, value, ttlMs)
  }

  async delete (keys: readonly string[]): Promise<void> {
    await this.#near.delete(keys)
    await this.#far.delete(keys)
  }

  async lock (key: string, ttlMs: number): Promise<boolean> {
    return await this.#far.lock(key, ttlMs)
  }

  async unlock (key: string): Promise<void> {
    await this.#far.unlock(key)
  }

  async purge (prefix: string, filter?: (value: Buffer) => boolean): Promise<number> {
    await this.#near.purge(prefix, filter)
    await this.#absent.purge(prefix)
    return await this.#far.purge(prefix, filter)
  }

  health (): StoreHealth {
    return this.#far.health()
  }

  /** Drops the tier; `far` is shared and closed by its owner. */
  async close (): Promise<void> {
    await this.#near.close()
    await this.#absent.close()
  }
}
