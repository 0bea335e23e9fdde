// A route's runtime: everything the pipeline runs a request through on that route, built once from its config (by
// src/server), so that a reload can keep or replace it whole.
import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import type { RouteCache } from '../cache/index.js'
import type { RouteConfig } from '../config/index.js'
import type { Downstream, Upstream } from '../core/index.js'
import type { CircuitBreaker } from '../resilience/index.js'

/** What the pipeline needs of a route's upstream beyond the cache's view of it. */
export interface RouteUpstream extends Upstream {
  /** The retry counts of a refusal answered without a call. */
  countRefused: (retried: boolean) => void
  /** Tunnels a WebSocket Upgrade; `refuse` answers the client on the raw socket when that fails. */
  upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer, upstreamPath: string, requestId: string, refuse: (err: Error) => void) => void
}

/** A bulk route's door: it reads, checks and takes one write, and answers it. */
export interface BulkDoor {
  accept: (client: Downstream) => void
}

/**
 * The requests under way on one route runtime: a reload retires a runtime it replaced once its last request ended, so
 * that its pools, coalescer and cache tier close under nobody.
 */
export class InFlight {
  #count = 0
  #idle: Array<() => void> = []

  enter (): void {
    this.#count++
  }

  leave (): void {
    if (--this.#count > 0) return
    const waiting = this.#idle
    this.#idle = []
    for (const resolve of waiting) resolve()
  }

  /** Resolves once no request is under way (at once when none is). */
  async idle (): Promise<void> {
    if (this.#count === 0) return
    await new Promise<void>((resolve) => { this.#idle.push(resolve) })
  }
}

export interface RouteRuntime {
  readonly route: RouteConfig
  /** The requests under way on this runtime. */
  readonly requests: InFlight
  readonly breaker: CircuitBreaker
  readonly upstream: RouteUpstream
  readonly cache: RouteCache | null
  readonly bulk: BulkDoor | null
  /** The open breaker's fallback body, made once; null without a fallback. */
  readonly fallbackBody: Buffer | null
}
