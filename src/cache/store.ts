// The byte stores under the response cache: an in-process LRU (the default) and Redis, standalone or Cluster.

/** Where cached bytes live. Every method fails open for its caller: a rejection is a bypass, never a client error. */
export interface CacheStore {
  /** `memory` or `redis`: the `store` label of cache_operation_latency_seconds. */
  readonly kind: 'memory' | 'redis'
  /** The values of `keys`, in order; null for each key that is absent. One round trip (keys share a hash slot). */
  get (keys: readonly string[]): Promise<Array<Buffer | null>>
  /**
   * `get` answered at once, by a store that holds the values in this process; undefined when it cannot (a store
   * across the network, or a tier that would have to ask one): then `get`. Saves a hit its promise hops.
   */
  peek?: (keys: readonly string[]) => Array<Buffer | null> | undefined
  /** Stores `value` under `key` for `ttlMs`. */
  set (key: string, value: Buffer, ttlMs: number): Promise<void>
  /** Removes `keys` (absent ones are fine). */
  delete (keys: readonly string[]): Promise<void>
  /**
   * Takes a short lock (SET NX PX): true when this caller has it. Used so that one gateway instance at a time
   * fetches a missing entry; the lock expires on its own.
   */
  lock (key: string, ttlMs: number): Promise<boolean>
  /** Removes the lock taken with `lock`. */
  unlock (key: string): Promise<void>
  /**
   * Deletes every key that starts with `prefix` (SCAN with MATCH on every master, never KEYS) and returns how many
   * were deleted. `filter`, when given, is asked about each matching key's value before it is deleted.
   */
  purge (prefix: string, filter?: (value: Buffer) => boolean): Promise<number>
  /** UP when commands go through, DOWN (with the last error) while they do not. */
  health (): StoreHealth
  /** Closes connections; pending commands fail. */
  close (): Promise<void>
}

export interface StoreHealth {
  readonly status: 'UP' | 'DOWN'
  readonly details: Readonly<Record<string, unknown>>
}
