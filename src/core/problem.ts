// RFC 9457 problem details: the body of every answer the gateway generates itself.
import { STATUS_CODES } from 'node:http'
import { ERROR_TABLE, type ErrorCode } from './errors.js'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'
/** What Fastify makes of PROBLEM_CONTENT_TYPE on a string body; the answers written before Fastify say the same. */
export const PROBLEM_CONTENT_TYPE_UTF8 = `${PROBLEM_CONTENT_TYPE}; charset=utf-8`

/** RFC 9457 section 3.1 members, plus Breakwater's extension members `code`, `route` and `requestId`. */
export interface Problem {
  readonly type: string
  readonly title: string
  readonly status: number
  readonly detail: string
  readonly code: ErrorCode
  readonly route?: string
  readonly requestId?: string
}

export interface ProblemContext {
  readonly route?: string | undefined
  readonly requestId?: string | undefined
}

export function problemFor (code: ErrorCode, detail: string, context: ProblemContext = {}): Problem {
  const spec = ERROR_TABLE[code]
  const problem: { -readonly [K in keyof Problem]: Problem[K] } = {
    // A URN rather than a URL: the type identifies the problem and is stable, with nothing to dereference.
    type: `urn:breakwater:problem:${code}`,
    title: spec.title,
    status: spec.status,
    detail,
    code
  }
  // Assigned, not spread: this runs for every refusal, an open breaker's fast-fail included.
  if (context.route !== undefined) problem.route = context.route
  if (context.requestId !== undefined) problem.requestId = context.requestId
  return problem
}

/** The serialized members before `detail`, by code: the part of a problem body that never varies. */
const PROBLEM_HEADS = new Map<ErrorCode, string>()

/**
 * JSON.stringify(problemFor(code, detail, context)), by construction, without building the object: a problem is the
 * whole answer of a fast-fail, and serializing a fresh one cost a tenth of it. Members in problemFor's order.
 */
export function problemJson (code: ErrorCode, detail: string, context: ProblemContext = {}): string {
  let head = PROBLEM_HEADS.get(code)
  if (head === undefined) {
    const { type, title, status } = problemFor(code, '')
    head = `{"type":${JSON.stringify(type)},"title":${JSON.stringify(title)},"status":${status},"detail":`
    PROBLEM_HEADS.set(code, head)
  }
  let json = `${head}${JSON.stringify(detail)},"code":"${code}"`
  if (context.route !== undefined) json += `,"route":${JSON.stringify(context.route)}`
  if (context.requestId !== undefined) json += `,"requestId":${JSON.stringify(context.requestId)}`
  return json + '}'
}

/** Retry-After (RFC 9110 section 10.2.3) in whole delay-seconds, at least 1: a client told 0 would come straight back. */
export function retryAfterSeconds (retryAfterMs: number): string {
  return String(Math.max(1, Math.ceil(retryAfterMs / 1000)))
}

/**
 * Whether an answer of this status must close its connection. A 413 is sent before the refused body is read, and
 * Node would otherwise read and discard the whole of it to keep the connection: however large it is.
 */
export function closesConnection (status: number): boolean {
  return status === 413
}

/**
 * A complete HTTP/1.1 response carrying a problem, for the places where no Fastify reply exists
 * (a client error on the raw socket, a refused Upgrade). It always closes the connection.
 */
export function rawProblemResponse (problem: Problem, extraHeaders: Readonly<Record<string, string>> = {}): string {
  const body = JSON.stringify(problem)
  let head = `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? 'Error'}\r\n` +
    `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n'
  for (const [name, value] of Object.entries(extraHeaders)) head += `${name}: ${value}\r\n`
  return `${head}\r\n${body}`
}
