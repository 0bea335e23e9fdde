// The gateway's keep-alive pools, one per upstream origin and connect timeout, shared by the routes that name them, so
// that a reload which keeps an origin keeps its warm connections, and a pool closes only once no route uses it.
import { Pool } from 'undici'

interface Shared {
  readonly pool: Pool
  users: number
}

export class UpstreamPools {
  readonly #shared = new Map<string, Shared>()

  /** The pool of `origin` with this connect timeout, made on first use; each acquire is paired with one release. */
  acquire (origin: string, connectTimeoutMs: number): Pool {
    const key = `${connectTimeoutMs} ${origin}`
    let shared = this.#shared.get(key)
    if (shared === undefined) {
      shared = { pool: new Pool(origin, { connect: { timeout: connectTimeoutMs } }), users: 0 }
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
