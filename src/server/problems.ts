// Problem+json answers through Fastify: the mapping of any error a handler throws to a gateway error, and the reply.
import type { FastifyReply } from 'fastify'
import { closesConnection, gatewayError, isGatewayError, PROBLEM_CONTENT_TYPE, type GatewayError, type Problem } from '../core/index.js'

/** Fastify's own 4xx errors keep their status in a gateway code; anything else is an internal error, with no detail leaked. */
export function asGatewayError (err: unknown): GatewayError {
  if (isGatewayError(err)) return err
  const status = (err as { statusCode?: number }).statusCode
  if (status === 413) return gatewayError('BW_ERR_REQUEST_BODY_TOO_LARGE', 'the request body is too large', err)
  if (status !== undefined && status >= 400 && status < 500) return gatewayError('BW_ERR_REQUEST_MALFORMED', (err as Error).message, err)
  return gatewayError('BW_ERR_GATEWAY_INTERNAL', 'the gateway failed to handle this request', err)
}

/** Sends `problem` as application/problem+json with its status. */
export function replyProblem (reply: FastifyReply, problem: Problem): void {
  if (closesConnection(problem.status)) reply.header('connection', 'close')
  reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem))
}
