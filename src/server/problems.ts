// The one mapping of any error a Fastify handler throws to a gateway error, for the problem+json answer.
import { gatewayError, isGatewayError, type GatewayError } from '../core/index.js'

/** Fastify's own 4xx errors keep their status in a gateway code; anything else is an internal error, with no detail leaked. */
export function asGatewayError (err: unknown): GatewayError {
  if (isGatewayError(err)) return err
  const status = (err as { statusCode?: number }).statusCode
  if (status === 413) return gatewayError('BW_ERR_REQUEST_BODY_TOO_LARGE', 'the request body is too large', err)
  if (status !== undefined && status >= 400 && status < 500) return gatewayError('BW_ERR_REQUEST_MALFORMED', (err as Error).message, err)
  return gatewayError('BW_ERR_GATEWAY_INTERNAL', 'the gateway failed to handle this request', err)
}
