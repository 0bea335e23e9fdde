// The one edge where undici's errors become the gateway's: 502 for a broken upstream, 504 for a slow one, with the cause kept.
import { gatewayError, isGatewayError, type ErrorCode, type GatewayError } from '../core/index.js'

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT'])
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED'
])

/** node:tls and OpenSSL's verification codes, by what they mean for the operator. */
const TLS_UNTRUSTED_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE', 'CERT_REVOKED', 'INVALID_CA'
])
const TLS_EXPIRED_CODES = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID'])

/** The TLS failure `code` names, or null when it is not one. */
function tlsFailure (code: string, route: string): { code: ErrorCode, detail: string } | null {
  if (TLS_UNTRUSTED_CODES.has(code)) return { code: 'BW_ERR_UPSTREAM_TLS_UNTRUSTED', detail: `the certificate of route ${route}'s upstream is not signed by a trusted CA (${code}); see upstreamTls.ca` }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return { code: 'BW_ERR_UPSTREAM_TLS_NAME_MISMATCH', detail: `the certificate of route ${route}'s upstream is for another name (${code}); see upstreamTls.servername` }
  if (TLS_EXPIRED_CODES.has(code)) return { code: 'BW_ERR_UPSTREAM_TLS_EXPIRED', detail: `the certificate of route ${route}'s upstream is expired or not yet valid (${code})` }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return { code: 'BW_ERR_UPSTREAM_TLS_HANDSHAKE', detail: `the TLS handshake with route ${route}'s upstream failed (${code})` }
  return null
}

/**
 * Maps an error from forwarding to the gateway error the client gets; errors that already are ours pass through.
 * The detail names the route, never the upstream's address (an edge gateway's client has no business knowing its
 * network): the address rides on the error as `upstream`, for the log.
 */
export function translateUpstreamError (err: unknown, route: string, upstream: string, timeoutMs: number): GatewayError {
  if (isGatewayError(err)) return err
  const code = (err as { code?: string } | null)?.code ?? ''
  if (TIMEOUT_CODES.has(code)) return upstreamError('BW_ERR_UPSTREAM_TIMEOUT', timeoutDetail(route, timeoutMs), upstream, err)
  const tls = tlsFailure(code, route)
  if (tls !== null) return upstreamError(tls.code, tls.detail, upstream, err)
  if (UNREACHABLE_CODES.has(code)) {
    return upstreamError('BW_ERR_UPSTREAM_UNREACHABLE', `the upstream of route ${route} could not be reached (${code})`, upstream, err)
  }
  return upstreamError('BW_ERR_UPSTREAM_BAD_RESPONSE',
    `the upstream of route ${route} sent an answer the gateway could not relay (${code === '' ? 'no code' : code})`, upstream, err)
}

/** A gateway error about one upstream of a route: `detail` for the client, `upstream` (its address) for the log. */
export function upstreamError (code: ErrorCode, detail: string, upstream: string, cause?: unknown): GatewayError {
  const err = gatewayError(code, detail, cause)
  ;(err as { upstream?: string }).upstream = upstream
  return err
}

export function timeoutDetail (route: string, timeoutMs: number): string {
  return `the upstream of route ${route} did not answer within ${timeoutMs} ms`
}
