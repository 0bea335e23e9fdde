// What the route caches publish: how each answer used the cache, and the store failures a request went on without.
import { Topic, type CacheStatus } from '../core/index.js'

/** Why a stale entry was served: stale-while-revalidate, the upstream failed, the breaker is open. */
export type StaleReason = 'swr' | 'error' | 'breaker'

/** How the cache took part in one answer, or why an answer went past it (BYPASS). */
export interface CacheOutcome {
  readonly route: string
  readonly status: CacheStatus
  /** A STALE answer's StaleReason; a BYPASS's reason (the request's, `store-error`, or why the answer was not stored). */
  readonly reason?: string
}

/** A store or refresh failure: the request went on without the cache. */
export interface CacheFailure {
  readonly route: string
  readonly err: unknown
}

export class CacheEvents {
  readonly outcome = new Topic<CacheOutcome>('cache.outcome')
  readonly failure = new Topic<CacheFailure>('cache.failure')
}
