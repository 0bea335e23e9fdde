// Downstream: the client side of one proxied request as the features see it: what the client asked, and the one
// writer of its answer. The pipeline makes it (src/pipeline/context.ts); features answer through it and never set the
// gateway's own fields (X-Request-Id, X-Cache) themselves.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ErrorCode } from './errors.js'

/** X-Cache: how the cache took part in an answer. */
export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'REVALIDATED' | 'BYPASS'

/** Response fields as Node's writeHead takes them: an object, or a flat name, value list. */
export type ResponseFields = Record<string, string | string[]> | string[]

export interface Downstream {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  /** X-Request-Id: the client's when sane, else a fresh UUID; sent upstream and in every answer. */
  readonly requestId: string
  /** The path and query asked of the upstream: the route's rewrite of the client's, dot segments resolved. */
  readonly upstreamPath: string
  /** How the cache took part in the answer, sent as X-Cache; null when it did not. The cache sets it before answering. */
  cacheStatus: CacheStatus | null
  /**
   * Writes the status line and `fields` with the gateway's own fields added; the body follows on `res`. For answers
   * that are not the gateway's own: the upstream's, relayed, or a stored one from the cache. `fields` is written to.
   */
  writeHead (status: number, fields: ResponseFields): void
  /** A whole answer of the gateway's own: `body` with its content type, and any extra fields (a flat list). */
  send (status: number, contentType: string, body: Buffer | string, fields?: readonly string[]): void
  /** The gateway's problem `code` as application/problem+json, closing the connection when the status asks for it. */
  problem (code: ErrorCode, detail: string, fields?: readonly string[]): void
}
