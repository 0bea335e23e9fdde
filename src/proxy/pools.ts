// The gateway's keep-alive pools, one per upstream origin and way of connecting (timeout, TLS, HTTP/2), shared by the
// routes that name them, so that a reload which keeps an origin keeps its warm connections, and a pool closes only
// once no route uses it.
import { createHash } from 'node:crypto'
import { Pool } from 'undici'

/** How a pool connects besides its origin: the TLS toward an https upstream, and whether it may speak HTTP/2. */
export interface PoolConnect {
  readonly timeoutMs: number
  /** node:tls options (PEM contents, servername, rejectUnauthorized); null: the defaults. */
  readonly tls: Readonly<Record<string, unknown>> | null
  readonly allowH2: boolean
}

interface Shared {
  readonly pool: Pool
  users: number
}

export class UpstreamPools {
  readonly #shared = new Map<string, Shared>()

  /** The pool of `origin` that connects so, made on first use; each acquire is paired with one release. */
  acquire (origin: string, connect: PoolConnect): Pool {
    // The TLS options hold keys: the map is keyed by their digest, not by the keys themselves.
    const key = `${origin} ${createHash('sha256').update(JSON.stringify(connect)).digest('hex')}`
    let shared = this.#shared.get(key)
    if (shared === undefined) {
      shared = { pool: new Pool(origin, { connect: { timeout: connect.timeoutMs, ...connect.tls }, allowH2: connect.allowH2 }), users: 0 }
      this.#shared.set(key, shared)
    }
    shared.users++
    return shared.pool
  }

  /** One user is done with `pool`: the last one closes it once its requests are done. */
  async release (pool: Pool): Promise<void> {
    for (const [key, shared] of this.#shared) {
      if (shared.pool !== pool) continue
      if (--shared.users > 0) return
      this.#shared.delete(key)
      await pool.close()
      return
    }
  }

  /** Closes every pool now, aborting what is in flight (a shutdown past its deadline). */
  async destroy (): Promise<void> {
    const pools = [...this.#shared.values()].map((shared) => shared.pool)
    this.#shared.clear()
    await Promise.all(pools.map(async (pool) => { await pool.destroy() }))
  }
}
