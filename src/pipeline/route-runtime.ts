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

export interface RouteRuntime {
  readonly route: RouteConfig
  readonly breaker: CircuitBreaker
  readonly upstream: RouteUpstream
  readonly cache: RouteCache | null
  readonly bulk: BulkDoor | null
  /** The open breaker's fallback body, made once; null without a fallback. */
  readonly fallbackBody: Buffer | null
}
