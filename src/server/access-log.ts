// The access log: one line per finished request, written through Fastify's own LogController instead of an extra hook.
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

export class AccessLog extends LogController {
  constructor (enabled: boolean) {
    super({ disableRequestLogging: !enabled, requestIdLogLabel: 'requestId' })
  }

  // Fastify logs every request twice (incoming, completed); the completed line carries all an access log needs.
  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    const line = {
      route: request.routeId,
      method: request.method,
      url: request.url,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100
    }
    if (error === null || error === undefined) request.log.info(line, 'request')
    else request.log.error({ ...line, err: error }, 'request failed')
  }
}
