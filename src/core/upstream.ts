// Upstream: what a route's upstream does for the pipeline and the cache: forward a client's request (retries and the
// breaker inside), or fetch an answer whole. proxy/ implements it; the cache sees only this.
import type { IncomingHttpHeaders } from 'node:http'
import type { Downstream } from './downstream.js'

/** An upstream answer kept whole: a capture of a relayed one, or a fetch. */
export interface CapturedResponse {
  readonly status: number
  /** The upstream's fields without hop-by-hop ones, before the gateway added its own. */
  readonly headers: Record<string, string | string[]>
  readonly body: Buffer
}

/** How a forward ended. Whatever the kind, the forward itself has answered the client only when it says so. */
export type ForwardEnd =
  /** The upstream's answer was relayed in full, its fields as received; `captured` when it fitted `captureUpToBytes`. */
  | { readonly kind: 'relayed', readonly status: number, readonly headers: IncomingHttpHeaders, readonly captured: CapturedResponse | null }
  /** The answer `holdBack` held: nothing was sent, the caller answers the client. */
  | { readonly kind: 'held', readonly status: number, readonly headers: Record<string, string | string[]> }
  /** No usable answer (after any retries); `answered` when the relayed answer was under way and has been cut. */
  | { readonly kind: 'failed', readonly error: Error & { readonly code: string }, readonly answered: boolean }
  /** The client left first. */
  | { readonly kind: 'abandoned' }
  /** The breaker refused the call (`retried`: at a retry, after earlier attempts failed); nothing was sent. */
  | { readonly kind: 'refused', readonly retryAfterMs: number, readonly retried: boolean }

/** What a caller (the cache) asks of one forward. */
export interface ForwardOptions {
  /** Request fields set upstream for this request, over the client's (a revalidation's validators); null removes one. */
  readonly headers?: Readonly<Record<string, string | null>>
  /** Hand back a copy of the relayed answer when its body is at most this many bytes. */
  readonly captureUpToBytes?: number
  /** Asked about the final answer's status, once no retry is left for it: true holds it back from the client. */
  readonly holdBack?: (status: number) => boolean
}

export interface Upstream {
  /**
   * Admission without a call: when the breaker refuses one now, counts it as not permitted and returns the ms until
   * it may permit one; otherwise changes nothing and returns null. For answers that stand in for a call (a stale
   * entry, the refusal itself) before any is made.
   */
  refusal (): number | null
  /** Forwards the client's request to the route's next upstream and relays the answer; `done` hears the end once. */
  forward (client: Downstream, options: ForwardOptions, done: (end: ForwardEnd) => void): void
  /**
   * A request of the gateway's own on the client's behalf (a background refresh), its answer read whole. Rejects
   * when the breaker refuses, the upstream fails or times out, or the body exceeds `maxBytes`.
   */
  fetch (client: Downstream, headers: Readonly<Record<string, string | null>>, maxBytes: number): Promise<CapturedResponse>
}
