// The log of an upstream's network failures: the first of an outage as one line, the repeats folded into one summary per upstream per 10 s.
import type { FastifyBaseLogger } from 'fastify'
import type { ErrorCode, GatewayError } from '../core/index.js'

/** At most one summary line per upstream per this long, with the count of the failures it folds. */
export const FAILURE_SUMMARY_INTERVAL_MS = 10_000

/**
 * The failures an outage is made of (refused, reset, DNS, timeout): expected of any network, and repeated for every
 * request while the upstream is down. A line with a stack trace for each of them was 386 MB of log in 100 s, written
 * faster than stdout took it; what each request got is in its access line and in the metrics.
 */
const NETWORK_FAILURES: ReadonlySet<ErrorCode> = new Set(['BW_ERR_UPSTREAM_UNREACHABLE', 'BW_ERR_UPSTREAM_TIMEOUT'])

/** True for an upstream's network failure, which goes to upstreamFailureLog rather than to a line with a stack. */
export function isUpstreamNetworkFailure (err: GatewayError): boolean {
  return NETWORK_FAILURES.has(err.code)
}

/** One upstream of one route: what a failure and its summary are about. */
export interface FailedUpstream {
  readonly route: string
  /** The upstream's origin, for the operator; the client's problem never names it. */
  readonly upstream: string
}

/** The failures of one upstream folded since its last line. */
export interface FailureSummary extends FailedUpstream {
  readonly failures: number
  /** How long the summary covers: from the upstream's last line to now. */
  readonly overMs: number
  /** The last folded failure's message. */
  readonly last: string
}

interface Folding extends FailedUpstream {
  /** When the upstream's last line (its first failure or a summary) was logged. */
  loggedAtMs: number
  failures: number
  last: string
}

/**
 * Which failures are logged, on an injected clock (tests pass a fake one): an upstream's first failure is logged
 * whole; the next ones are counted, and summed up in one line once FAILURE_SUMMARY_INTERVAL_MS has passed since its
 * last line, by the next failure or by `due()`. An upstream with nothing to sum up at the end of an interval is
 * forgotten, so the first failure of its next outage is logged whole again.
 */
export class FailureFolder {
  readonly #byUpstream = new Map<string, Folding>()

  constructor (private readonly now: () => number, private readonly intervalMs = FAILURE_SUMMARY_INTERVAL_MS) {}

  /** A failure of `at`: `first` to log it whole, a summary to log in its place, or null when it is only counted. */
  failed (at: FailedUpstream, message: string): 'first' | FailureSummary | null {
    const key = `${at.route}\u0000${at.upstream}`
    const now = this.now()
    const folding = this.#byUpstream.get(key)
    if (folding === undefined) {
      this.#byUpstream.set(key, { route: at.route, upstream: at.upstream, loggedAtMs: now, failures: 0, last: message })
      return 'first'
    }
    folding.failures++
    folding.last = message
    return now - folding.loggedAtMs >= this.intervalMs ? this.#summarize(folding, now) : null
  }

  /** The summaries whose interval has passed (for a timer to log), and the upstreams quiet for an interval forgotten. */
  due (): FailureSummary[] {
    const now = this.now()
    const summaries: FailureSummary[] = []
    for (const [key, folding] of this.#byUpstream) {
      if (now - folding.loggedAtMs < this.intervalMs) continue
      if (folding.failures === 0) this.#byUpstream.delete(key)
      else summaries.push(this.#summarize(folding, now))
    }
    return summaries
  }

  #summarize (folding: Folding, now: number): FailureSummary {
    const summary = { route: folding.route, upstream: folding.upstream, failures: folding.failures, overMs: now - folding.loggedAtMs, last: folding.last }
    folding.loggedAtMs = now
    folding.failures = 0
    return summary
  }
}

/** What the gateway's error handler tells about an upstream's network failure; `close` stops the summaries' timer. */
export interface UpstreamFailureLog {
  failed (err: GatewayError, route: string, requestId: string): void
  close (): void
}

/** How often the timer looks for summaries due: a summary comes at most this much after its interval. */
const DUE_CHECK_MS = 1_000

/** The folder's lines on `log`, at warn: one for the first failure, one per summary, neither with a stack. */
export function upstreamFailureLog (log: FastifyBaseLogger, now: () => number, intervalMs = FAILURE_SUMMARY_INTERVAL_MS): UpstreamFailureLog {
  const folder = new FailureFolder(now, intervalMs)
  const seconds = intervalMs / 1000
  const summarize = (summary: FailureSummary): void => {
    const { route, upstream, failures, overMs, last } = summary
    log.warn({ route, upstream, failures, overMs },
      `${failures} more failure${failures === 1 ? '' : 's'} of the upstream of route ${route} (${upstream}) in ${Math.round(overMs / 1000)} s; the last: ${last}`)
  }
  const timer = setInterval(() => { for (const summary of folder.due()) summarize(summary) }, DUE_CHECK_MS).unref()
  return {
    failed (err, route, requestId) {
      const upstream = err.upstream ?? 'unknown'
      const outcome = folder.failed({ route, upstream }, err.message)
      if (outcome === 'first') {
        const cause = (err.cause as { code?: unknown } | undefined)?.code
        log.warn({ requestId, route, upstream, code: err.code, ...(typeof cause === 'string' ? { cause } : {}) },
          `upstream ${upstream}: ${err.message}; its next failures are counted, in one line per ${seconds} s`)
      } else if (outcome !== null) {
        summarize(outcome)
      }
    },
    close () { clearInterval(timer) }
  }
}
