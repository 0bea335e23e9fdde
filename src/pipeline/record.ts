// The one record of every request the gateway answers, published on `request.end` when its response closes: metrics,
// the access log and the upstream-failure log listen to it.
import type { CacheStatus, ErrorCode, GatewayError } from '../core/index.js'

export interface RequestRecord {
  readonly requestId: string
  readonly method: string
  readonly url: string
  /** The route that matched (or whose path matched but not its method), or null. */
  readonly routeId: string | null
  /** Spring's `uri` tag: the route's prefix, the gateway endpoint's path, or NOT_FOUND. */
  readonly uri: string
  /** The status sent; 499 (nginx's) when the client left before an answer began. */
  readonly status: number
  readonly durationMs: number
  /** The code of the gateway's own problem answer, or null. */
  readonly code: ErrorCode | null
  /** What failed behind a problem answer of status 5xx, for the log; null otherwise. */
  readonly error: GatewayError | null
  /** How the cache took part (X-Cache), or null. */
  readonly cacheStatus: CacheStatus | null
}

/** The status recorded for a request whose client left before any answer began (nginx's 499). */
export const CLIENT_CLOSED_STATUS = 499
