// The access log: one line per finished request, from its record; and Fastify's own request logging, kept quiet.
import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify'
import { pino } from 'pino'
import type { ErrorCode } from '../core/index.js'

/** The fields of an access-log line, after the request id; the message is `request`. */
export interface AccessLine {
  readonly route: string | null
  readonly method: string | undefined
  readonly url: string | undefined
  readonly status: number
  readonly durationMs: number
  /** The code of the gateway's own problem answer (left out of the line otherwise): what a folded failure log no longer repeats. */
  readonly code: ErrorCode | undefined
}

/** One line's fields; the early fast-fail answer logs the same line without a Fastify request. */
export function accessLine (route: string | null, method: string | undefined, url: string | undefined, status: number, elapsedMs: number, code: ErrorCode | null = null): AccessLine {
  return { route, method, url, status, durationMs: Math.round(elapsedMs * 100) / 100, code: code ?? undefined }
}

/** Logs one access line at info, with the request id first, as a request's child logger binds it. */
export type AccessLineWriter = (requestId: string, line: AccessLine) => void

/** The pino internals the fast writer reads; all are in `pino.symbols`, pino's exported names for them. */
interface PinoInternals {
  readonly [key: symbol]: unknown
}

/**
 * pino's logMethod hook that drops Fastify's "Server listening at" lines: one per address of each listener (one per
 * network interface on 0.0.0.0), without saying what the listener is for; the startup line says it once, with the
 * role. It never touches another line, so the access-line writer's fast path stays on under it.
 */
export function withoutListeningLines (this: unknown, args: Parameters<pino.LogFn>, method: pino.LogFn): void {
  if (typeof args[0] === 'string' && args[0].startsWith('Server listening at ')) return
  method.apply(this, args)
}

/**
 * A writer of access lines to `logger`. A line per request is the logger's hottest use: on a cache hit pino's
 * generic path (per-field type checks and serializer lookups) cost about 0.9 µs of 15. For a plain pino logger the
 * line is formatted here, exactly as pino formats it (checked once against pino's own serializer at start: a logger
 * configured otherwise, with a mixin, hooks (but withoutListeningLines), formatters or redaction, gets `logger.info`
 * instead), and written to the logger's destination.
 */
export function accessLineWriter (logger: FastifyBaseLogger): AccessLineWriter {
  const viaLogger: AccessLineWriter = (requestId, line) => { logger.info({ requestId, ...line }, 'request') }
  const internals = logger as unknown as PinoInternals
  const { asJsonSym, chindingsSym, hooksSym, lsCacheSym, messageKeySym, mixinSym, needsMetadataGsym, streamSym, timeSym } = pino.symbols
  const stream = internals[streamSym] as { write: (line: string) => unknown, [key: symbol]: unknown } | undefined
  const hooks = internals[hooksSym] as { logMethod?: unknown, streamWrite?: unknown } | undefined
  const info = (logger as pino.Logger).levels?.values.info
  if (stream === undefined || info === undefined || internals[mixinSym] !== undefined || (hooks?.logMethod !== undefined && hooks.logMethod !== withoutListeningLines) ||
    hooks?.streamWrite !== undefined || stream[needsMetadataGsym] === true) return viaLogger
  const time = (internals[timeSym] as () => string).bind(logger)
  const head = (internals[lsCacheSym] as Record<number, string>)[info] as string
  const chindings = internals[chindingsSym] as string
  const tail = `,${JSON.stringify(internals[messageKeySym])}:"request"}\n`
  const format = (timePart: string, requestId: string, line: AccessLine & { method: string, url: string }): string =>
    `${head}${timePart}${chindings},"requestId":${JSON.stringify(requestId)},"route":${line.route === null ? 'null' : JSON.stringify(line.route)}` +
    `,"method":${JSON.stringify(line.method)},"url":${JSON.stringify(line.url)},"status":${line.status},"durationMs":${line.durationMs}` +
    `${line.code === undefined ? '' : `,"code":${JSON.stringify(line.code)}`}${tail}`

  const asJson = internals[asJsonSym] as (obj: object, msg: string, level: number, time: string) => string
  const probe = { route: 'r"é', method: 'GET', url: '/a?"\\\u0001é', status: 200, durationMs: 1.25, code: undefined }
  const problem = { ...probe, status: 502, code: 'BW_ERR_UPSTREAM_UNREACHABLE' as const }
  for (const line of [probe, problem]) {
    if (asJson.call(logger, { requestId: 'id"\\', ...line }, 'request', info, ',"time":0') !== format(',"time":0', 'id"\\', line)) return viaLogger
  }

  const isEnabled = (logger as pino.Logger).isLevelEnabled.bind(logger)
  return (requestId, line) => {
    if (!isEnabled('info')) return
    if (line.method === undefined || line.url === undefined) viaLogger(requestId, line)
    else stream.write(format(time(), requestId, line as AccessLine & { method: string, url: string }))
  }
}

/**
 * Fastify's request logging for its own listeners (the management plane, the autoscaler's): no line per request (the
 * access log is written from each request's record, see observe.ts, and scrapes and probes would drown it), but a
 * request that failed inside Fastify is logged with its error.
 */
export class QuietRequestLog extends LogController {
  constructor () {
    super({ requestIdLogLabel: 'requestId' })
  }

  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error === null || error === undefined) return
    request.log.error({ ...accessLine(null, request.method, request.url, reply.statusCode, reply.elapsedTime), err: error }, 'request failed')
  }
}
