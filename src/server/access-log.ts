// The access log: one line per finished request, written through Fastify's own LogController instead of an extra hook.
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

/** The fields of an access-log line, after the request id; the message is `request`. */
export interface AccessLine {
  readonly route: string | null
  readonly method: string | undefined
  readonly url: string | undefined
  readonly status: number
  readonly durationMs: number
}

/** One line's fields; the early fast-fail answer logs the same line without a Fastify request. */
export function accessLine (route: string | null, method: string | undefined, url: string | undefined, status: number, elapsedMs: number): AccessLine {
  return { route, method, url, status, durationMs: Math.round(elapsedMs * 100) / 100 }
}

export class AccessLog extends LogController {
  constructor (enabled: boolean) {
    super({ disableRequestLogging: !enabled, requestIdLogLabel: 'requestId' })
  }

  // Fastify logs every request twice (incoming, completed); the completed line carries all an access log needs.
  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    const line = accessLine(request.routeId, request.method, request.url, reply.statusCode, reply.elapsedTime)
    if (error === null || error === undefined) request.log.info(line, 'request')
    else request.log.error({ ...line, err: error }, 'request failed')
  }
}
