// Fastify: the management plane (/actuator on the gateway's port, or on its own listener) and the server's lifecycle.
// Proxied traffic never enters it; the pipeline hands it only the paths under /actuator.
import type { RequestListener } from 'node:http'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { actuatorPlugin, type ActuatorOptions } from '../actuator/index.js'
import type { GatewayConfig } from '../config/index.js'
import { asGatewayError, problemFor, type ErrorCode, type Topic } from '../core/index.js'
import { NOT_FOUND_URI } from '../metrics/index.js'
import { requestIdFor, type Pipeline, type RequestRecord } from '../pipeline/index.js'
import { QuietRequestLog } from './access-log.js'
import { createGatewayServer, onClientError } from './http-server.js'
import { replyProblem } from './problems.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The code of the problem the gateway answered with, or null: the `exception` label of the request metrics. */
    errorCode: ErrorCode | null
  }
}

export interface ManagementOptions {
  /** A pino logger in place of one built from `server.logLevel`. */
  readonly logger?: FastifyBaseLogger
  readonly pipeline: Pipeline
  /** Where the management plane's requests are recorded, as the pipeline records its own. */
  readonly requestEnd: Topic<RequestRecord>
  /** True once shutdown began: every endpoint but the probes refuses. */
  readonly closing: () => boolean
}

/**
 * The gateway's Fastify instance, listening through the pipeline's front door: it keeps the management plane when
 * `management.port` is not set, the lifecycle (ready, close) in any case.
 */
export function buildGatewayApp (config: GatewayConfig, options: ManagementOptions): FastifyInstance {
  const { pipeline, requestEnd, closing } = options
  const ownPort = config.management.port === null
  const app = Fastify({
    ...(options.logger === undefined ? { logger: { level: config.server.logLevel } } : { loggerInstance: options.logger }),
    // Each request's access line is written from its record (observe.ts), not by Fastify.
    logController: new QuietRequestLog(),
    genReqId: requestIdFor,
    trustProxy: config.server.trustProxy,
    // Refused below as a problem, like every answer of the gateway's own.
    return503OnClosing: false,
    frameworkErrors: (err, request, reply) => {
      sendProblem(request, reply, 'BW_ERR_REQUEST_MALFORMED', `the request target is not valid: ${err.message}`)
    },
    serverFactory: (handler) => createGatewayServer(pipeline.frontDoor(ownPort ? handler as RequestListener : null), config.server),
    clientErrorHandler: onClientError
  }) as unknown as FastifyInstance
  app.decorateRequest('errorCode', null)
  // Bodies are left unread: the endpoints take none, and a request injected past the front door streams its own upstream.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    // Probes still answer, so readiness reports DOWN instead of a refusal.
    if (closing() && request.routeOptions.config.probe !== true) {
      reply.header('connection', 'close')
      sendProblem(request, reply, 'BW_ERR_GATEWAY_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance')
    }
    done()
  })
  app.setErrorHandler((err, request, reply) => {
    const known = asGatewayError(err)
    if (known.statusCode >= 500) request.log.warn({ err: known.cause ?? err }, known.message)
    sendProblem(request, reply, known.code, known.message)
  })
  app.addHook('onResponse', (request, reply, done) => {
    requestEnd.publish({
      requestId: request.id,
      method: request.method,
      url: request.url,
      routeId: null,
      // Spring's `uri` is the endpoint's path template.
      uri: request.routeOptions.url ?? NOT_FOUND_URI,
      status: reply.statusCode,
      durationMs: reply.elapsedTime,
      code: request.errorCode,
      error: null,
      cacheStatus: null
    })
    done()
  })
  // A request injected past the server (light-my-request) finds no front door: what no endpoint takes goes to the pipeline.
  app.setNotFoundHandler((request, reply) => {
    reply.hijack()
    pipeline.handle(request.raw, reply.raw, null)
  })
  return app
}

/** /actuator on its own listener (`management.port`): never proxied, and never in the access log. */
export function buildManagementServer (config: GatewayConfig, logger: FastifyBaseLogger, actuator: ActuatorOptions): FastifyInstance {
  const management = Fastify({
    loggerInstance: logger,
    // Scrapes and probes every few seconds would drown the access log of the traffic that matters.
    logController: new QuietRequestLog(),
    genReqId: requestIdFor,
    trustProxy: config.server.trustProxy,
    serverFactory: (handler) => createGatewayServer(handler, config.server),
    clientErrorHandler: onClientError
  }) as unknown as FastifyInstance
  management.decorateRequest('errorCode', null)
  management.register(actuatorPlugin, actuator)
  management.setNotFoundHandler((request, reply) => {
    sendProblem(request, reply, 'BW_ERR_ACTUATOR_NOT_FOUND', 'no actuator endpoint at this path')
  })
  return management
}

function sendProblem (request: FastifyRequest, reply: FastifyReply, code: ErrorCode, detail: string): void {
  request.errorCode = code
  replyProblem(reply, problemFor(code, detail, { requestId: request.id }))
}
