// X-Request-Id: the client's when it is a sane token, otherwise a fresh UUID; sent upstream, echoed back, in every log line.
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

/** Visible ASCII only and bounded, so a client cannot forge log lines or bloat every header that carries it. */
const ACCEPTABLE_ID = /^[\x21-\x7e]{1,200}$/

export function requestIdFor (req: IncomingMessage): string {
  const id = req.headers['x-request-id']
  return typeof id === 'string' && ACCEPTABLE_ID.test(id) ? id : randomUUID()
}
