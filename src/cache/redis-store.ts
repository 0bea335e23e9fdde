// The Redis byte store: binary-safe MGET / SET PX / DEL, SET NX locks and SCAN purges on every master, each command bounded in time.
import { performance } from 'node:perf_hooks'
import type { CacheStore, StoreHealth } from './store.js'

/** Keys SCAN is asked to look at per call while purging: large enough for few round trips, small enough not to block Redis. */
export const DEFAULT_PURGE_SCAN_COUNT = 500

/**
 * The commands the store sends, as ioredis' `Redis` and `Cluster` both declare them. Structural, so that the cache
 * feature never imports ioredis (src/redis/ builds the client).
 */
export interface RedisStoreClient {
  /** ioredis' connection status; `ready` when commands go through. */
  readonly status: string
  mgetBuffer: (keys: string[]) => Promise<Array<Buffer | null>>
  getBuffer: (key: string) => Promise<Buffer | null>
  set: {
    (key: string, value: Buffer, millisecondsToken: 'PX', milliseconds: number): Promise<unknown>
    (key: string, value: string, millisecondsToken: 'PX', milliseconds: number, nx: 'NX'): Promise<'OK' | null>
  }
  del: (keys: string[]) => Promise<number>
  on: (event: 'ready', listener: () => void) => unknown
}

/** A master's own connection: SCAN walks one node's keyspace, so a purge asks each master. */
export interface RedisStoreNode {
  scan: (cursor: string, matchToken: 'MATCH', pattern: string, countToken: 'COUNT', count: number) => Promise<[cursor: string, elements: string[]]>
}

/** What the store needs of a connection; src/redis' `createRedisClient` returns one. */
export interface RedisStoreConnection {
  readonly kind: 'standalone' | 'cluster'
  readonly client: RedisStoreClient
  /** A connection to each master (the client itself when standalone). */
  masters: () => readonly RedisStoreNode[]
  /** Lets the commands of this event-loop turn go out in one write. */
  coalesceWrites: () => void
  close: () => Promise<void>
}

export interface RedisStoreOptions {
  /**
   * A command not answered within this time is rejected with a RedisStoreTimeoutError (ms), so a slow or hung Redis
   * never holds a request longer than this: the caller bypasses the cache. A purge bounds each of its commands.
   */
  readonly commandTimeoutMs: number
  /**
   * Keys each SCAN call is asked to look at while purging.
   * @default 500
   */
  readonly scanCount?: number
  /**
   * Called after each get, set and delete with its duration in seconds (and its error, if it failed): feeds
   * `cache_operation_latency_seconds{operation,store}` and `cache_errors_total{operation}`. `lock` reports as `set` and
   * `unlock` as `delete` (the commands they are); `purge` is not reported. Must not throw.
   */
  readonly onOperation?: (operation: 'get' | 'set' | 'delete', seconds: number, error?: Error) => void
}

/** A command Redis did not answer within `commandTimeoutMs`. */
export class RedisStoreTimeoutError extends Error {
  override readonly name = 'RedisStoreTimeoutError'
  readonly code = 'ETIMEDOUT'
  constructor (readonly command: string, readonly timeoutMs: number) {
    super(`Redis did not answer ${command} within ${timeoutMs} ms`)
  }
}

type Operation = 'get' | 'set' | 'delete'

/**
 * Health follows what happened last: a failed or timed-out command turns it DOWN (with that error) until a command
 * succeeds or the connection becomes ready again; a connection that is not ready is DOWN too. So a Cluster with one
 * master away can show UP and DOWN in turn, as commands reach the healthy and the missing master.
 */
export class RedisStore implements CacheStore {
  readonly kind = 'redis'
  readonly #connection: RedisStoreConnection
  readonly #client: RedisStoreClient
  readonly #timeoutMs: number
  readonly #scanCount: number
  readonly #onOperation: RedisStoreOptions['onOperation']
  #lastError: Error | null = null

  constructor (connection: RedisStoreConnection, options: RedisStoreOptions) {
    const { commandTimeoutMs, scanCount = DEFAULT_PURGE_SCAN_COUNT } = options
    if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) {
      throw new RangeError(`expected options.commandTimeoutMs to be a positive number of milliseconds, got ${String(commandTimeoutMs)}`)
    }
    if (!Number.isSafeInteger(scanCount) || scanCount < 1) throw new RangeError(`expected options.scanCount to be a positive integer, got ${String(scanCount)}`)
    this.#connection = connection
    this.#client = connection.client
    this.#timeoutMs = commandTimeoutMs
    this.#scanCount = scanCount
    this.#onOperation = options.onOperation
    connection.client.on('ready', () => { this.#lastError = null })
  }

  /** One MGET: the caller puts the keys in one hash slot (a {hash tag}), or a Cluster answers CROSSSLOT. */
  async get (keys: readonly string[]): Promise<Array<Buffer | null>> {
    // MGET with no key is a syntax error in Redis.
    if (keys.length === 0) return []
    return this.#command('get', 'MGET', () => this.#client.mgetBuffer(keys as string[]))
  }

  async set (key: string, value: Buffer, ttlMs: number): Promise<void> {
    const ttl = ttlMillis(ttlMs)
    await this.#command('set', 'SET', () => this.#client.set(key, value, 'PX', ttl))
  }

  /** Keys in different hash slots are fine: in a Cluster each goes in its own DEL. */
  async delete (keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return
    await this.#command('delete', 'DEL', () => this.#del(keys))
  }

  async lock (key: string, ttlMs: number): Promise<boolean> {
    const ttl = ttlMillis(ttlMs)
    return await this.#command('set', 'SET NX', () => this.#client.set(key, '1', 'PX', ttl, 'NX')) === 'OK'
  }

  async unlock (key: string): Promise<void> {
    await this.delete([key])
  }

  /**
   * SCAN MATCH `<prefix>*` on every master, never KEYS, so Redis keeps serving between calls. SCAN may return a key
   * twice; the count is what DEL reports, so it is counted once. With `filter`, each value is read before its DEL, so
   * a value written between the read and the DEL is deleted unread.
   */
  async purge (prefix: string, filter?: (value: Buffer) => boolean): Promise<number> {
    const pattern = `${escapeGlob(prefix)}*`
    let purged = 0
    for (const node of this.#connection.masters()) {
      let cursor = '0'
      do {
        const [next, keys] = await this.#command(null, 'SCAN', () => node.scan(cursor, 'MATCH', pattern, 'COUNT', this.#scanCount))
        cursor = next
        const doomed = filter === undefined ? keys : await this.#matching(keys, filter)
        if (doomed.length > 0) purged += await this.#command(null, 'DEL', () => this.#del(doomed))
      } while (cursor !== '0')
    }
    return purged
  }

  health (): StoreHealth {
    const mode = this.#connection.kind
    const status = this.#client.status
    const error = this.#lastError?.message ?? (status === 'ready' ? null : `connection ${status}`)
    return error === null ? { status: 'UP', details: { mode } } : { status: 'DOWN', details: { mode, error } }
  }

  async close (): Promise<void> {
    await this.#connection.close()
  }

  /** The keys among `keys` whose value `filter` accepts; a key gone meanwhile is left out. */
  async #matching (keys: readonly string[], filter: (value: Buffer) => boolean): Promise<string[]> {
    const values = await Promise.all(keys.map((key) => this.#command(null, 'GET', () => this.#client.getBuffer(key))))
    return keys.filter((_key, i) => {
      const value = values[i] as Buffer | null
      return value !== null && filter(value)
    })
  }

  /** DEL, as one command standalone and one per key in a Cluster (a multi-key DEL across slots is CROSSSLOT there). */
  async #del (keys: readonly string[]): Promise<number> {
    if (this.#connection.kind === 'standalone') return await this.#client.del(keys as string[])
    const counts = await Promise.all(keys.map((key) => this.#client.del([key])))
    return counts.reduce((sum, count) => sum + count, 0)
  }

  /**
   * Runs one command (or one fan-out of them) within `commandTimeoutMs`, keeps health, and reports `operation`.
   * The store's own timer is what bounds the caller: ioredis' commandTimeout (set by src/redis) only starts once a
   * Cluster has handed the command to a node, and a connection built elsewhere may have none.
   */
  async #command<T> (operation: Operation | null, command: string, send: () => Promise<T>): Promise<T> {
    const started = performance.now()
    let timer: NodeJS.Timeout | undefined
    try {
      const result = await new Promise<T>((resolve, reject) => {
        timer = setTimeout(() => reject(new RedisStoreTimeoutError(command, this.#timeoutMs)), this.#timeoutMs)
        this.#connection.coalesceWrites()
        send().then(resolve, reject)
      })
      this.#lastError = null
      if (operation !== null) this.#onOperation?.(operation, (performance.now() - started) / 1000)
      return result
    } catch (err) {
      // ioredis rejects with Errors only, and so does the timer.
      const error = err as Error
      this.#lastError = error
      if (operation !== null) this.#onOperation?.(operation, (performance.now() - started) / 1000, error)
      throw error
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Escapes Redis glob syntax (`* ? [ ] \`) so that the prefix matches only itself. */
export function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/**
 * The TTL as whole milliseconds, rounded up (PX takes an integer). A TTL that is not positive is a caller's bug, not a
 * Redis failure: it rejects before anything is sent, and health stays as it was.
 */
function ttlMillis (ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`expected ttlMs to be a positive finite number of milliseconds, got ${String(ttlMs)}`)
  }
  return Math.ceil(ttlMs)
}
