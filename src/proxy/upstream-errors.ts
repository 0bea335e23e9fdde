// The one edge where undici's errors become the gateway's: 502 for a broken upstream, 504 for a slow one, with the cause kept.
import { gatewayError, isGatewayError, type GatewayError } from '../core/index.js'

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT'])
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED'
])

/** Maps an error from forwarding to the gateway error the client gets; errors that already are ours pass through. */
export function translateUpstreamError (err: unknown, upstream: string, timeoutMs: number): GatewayError {
  if (isGatewayError(err)) return err
  const code = (err as { code?: string } | null)?.code ?? ''
  if (TIMEOUT_CODES.has(code)) {
    return gatewayError('BW_ERR_UPSTREAM_TIMEOUT', `${upstream} did not answer within ${timeoutMs} ms`, err)
  }
  if (UNREACHABLE_CODES.has(code)) {
    return gatewayError('BW_ERR_UPSTREAM_UNREACHABLE', `${upstream} could not be reached (${code})`, err)
  }
  return gatewayError('BW_ERR_UPSTREAM_BAD_RESPONSE', `${upstream} sent an answer the gateway could not relay (${code === '' ? 'no code' : code})`, err)
}
