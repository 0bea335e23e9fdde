// Checks shared by the tests of the gateway's own answers: problem+json bodies that leak nothing, origins that saw nothing.
import type { Upstream } from './upstream.js'
import type { RawResponse } from './raw-http.js'

/** Anything that would tell a client how the gateway is built: a stack frame, a file path, a source location. */
export const LEAK = /\bat [\w.<>]+ \(|\n\s+at |\/work\/|node_modules|\.[cm]?[jt]s:\d|file:\/\//

/** The body of a raw response, de-chunked when it came with Transfer-Encoding: chunked (RFC 9112 section 7.1). */
export function decodedBody (res: RawResponse): string {
  if (!/\bchunked\b/i.test(res.headers['transfer-encoding'] ?? '')) return res.body
  let rest = res.body
  let out = ''
  // Each round consumes one chunk, so the loop ends within the body's length.
  for (let guard = 0; guard <= res.body.length; guard++) {
    const lineEnd = rest.indexOf('\r\n')
    if (lineEnd === -1) break
    const size = Number.parseInt(rest.slice(0, lineEnd), 16)
    if (!Number.isFinite(size) || size === 0) break
    out += rest.slice(lineEnd + 2, lineEnd + 2 + size)
    rest = rest.slice(lineEnd + 2 + size + 2)
  }
  return out
}

/** Counts requests as soon as their head reaches the origin, complete or not (`received` only lists complete ones). */
export function countArrivals (upstream: Upstream): () => number {
  let arrivals = 0
  upstream.server.on('request', () => { arrivals++ })
  return () => arrivals
}
