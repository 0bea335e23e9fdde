// The one table of errors the gateway answers with: code, HTTP status and title, as fastify's lib/errors.js keeps its own.
import createError from '@fastify/error'

/** One row of the error table; `title` is the short, stable RFC 9457 problem title. */
export interface ErrorSpec {
  readonly status: number
  readonly title: string
}

export const ERROR_TABLE = {
  BW_ERR_ROUTE_NOT_FOUND: { status: 404, title: 'No route matches this request' },
  BW_ERR_ROUTE_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed on this route' },
  BW_ERR_ROUTE_UPGRADE_REFUSED: { status: 400, title: 'This route does not proxy Upgrade requests' },
  BW_ERR_REQUEST_MALFORMED: { status: 400, title: 'Malformed request' },
  BW_ERR_REQUEST_BAD_PATH: { status: 400, title: 'Path climbs above the root' },
  BW_ERR_REQUEST_TIMEOUT: { status: 408, title: 'Request headers not received in time' },
  BW_ERR_REQUEST_BODY_TOO_LARGE: { status: 413, title: 'Request body too large' },
  BW_ERR_REQUEST_HEADERS_TOO_LARGE: { status: 431, title: 'Request header fields too large' },
  BW_ERR_UPSTREAM_UNREACHABLE: { status: 502, title: 'Upstream unreachable' },
  BW_ERR_UPSTREAM_BAD_RESPONSE: { status: 502, title: 'Bad upstream response' },
  BW_ERR_UPSTREAM_TIMEOUT: { status: 504, title: 'Upstream timed out' },
  BW_ERR_UPSTREAM_TLS_UNTRUSTED: { status: 502, title: 'Upstream certificate not trusted' },
  BW_ERR_UPSTREAM_TLS_NAME_MISMATCH: { status: 502, title: 'Upstream certificate names another host' },
  BW_ERR_UPSTREAM_TLS_EXPIRED: { status: 502, title: 'Upstream certificate expired or not yet valid' },
  BW_ERR_UPSTREAM_TLS_HANDSHAKE: { status: 502, title: 'TLS handshake with the upstream failed' },
  BW_ERR_UPSTREAM_CIRCUIT_OPEN: { status: 503, title: 'Circuit breaker open' },
  BW_ERR_BULK_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'A bulk item must be application/json' },
  BW_ERR_BULK_INVALID_ITEM: { status: 400, title: 'Not a valid bulk item' },
  BW_ERR_BULK_QUEUE_FULL: { status: 503, title: 'Bulk queue full' },
  BW_ERR_BULK_QUEUE_UNAVAILABLE: { status: 503, title: 'Bulk queue unavailable' },
  BW_ERR_GATEWAY_SHUTTING_DOWN: { status: 503, title: 'Gateway shutting down' },
  BW_ERR_GATEWAY_INTERNAL: { status: 500, title: 'Internal gateway error' },
  BW_ERR_ACTUATOR_UNAUTHORIZED: { status: 401, title: 'Actuator token missing or wrong' },
  BW_ERR_ACTUATOR_FORBIDDEN: { status: 403, title: 'Actuator changes are disabled' },
  BW_ERR_ACTUATOR_NOT_FOUND: { status: 404, title: 'No such actuator endpoint or circuit breaker' },
  BW_ERR_ACTUATOR_BAD_REQUEST: { status: 400, title: 'Bad actuator request' },
  BW_ERR_CONFIG_INVALID: { status: 400, title: 'Config refused' }
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERROR_TABLE

/** An error the gateway answers with itself: its code picks status and title from ERROR_TABLE. */
export interface GatewayError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  /** The upstream's address (origin URL) when an upstream failed: for the log, never for the client's problem. */
  readonly upstream?: string
}

const constructors = new Map<ErrorCode, createError.FastifyErrorConstructor>()
for (const [code, spec] of Object.entries(ERROR_TABLE) as Array<[ErrorCode, ErrorSpec]>) {
  // '%s' lets each throw site put its own detail in the message.
  constructors.set(code, createError(code, '%s', spec.status, Error, false))
}

/** Builds the gateway error `code` with a human detail; `cause` keeps the library error it came from. */
export function gatewayError (code: ErrorCode, detail: string, cause?: unknown): GatewayError {
  const Ctor = constructors.get(code) as createError.FastifyErrorConstructor
  const err = new Ctor(detail) as GatewayError
  if (cause !== undefined) (err as { cause?: unknown }).cause = cause
  return err
}

export function isGatewayError (err: unknown): err is GatewayError {
  const code = (err as { code?: unknown } | null)?.code
  return err instanceof Error && typeof code === 'string' && Object.hasOwn(ERROR_TABLE, code)
}

/** Our errors as they are; a framework's 4xx keeps its status in a gateway code; anything else is an internal error, with no detail leaked. */
export function asGatewayError (err: unknown): GatewayError {
  if (isGatewayError(err)) return err
  const status = (err as { statusCode?: number } | null)?.statusCode
  if (status === 413) return gatewayError('BW_ERR_REQUEST_BODY_TOO_LARGE', 'the request body is too large', err)
  if (status !== undefined && status >= 400 && status < 500) return gatewayError('BW_ERR_REQUEST_MALFORMED', (err as Error).message, err)
  return gatewayError('BW_ERR_GATEWAY_INTERNAL', 'the gateway failed to handle this request', err)
}
