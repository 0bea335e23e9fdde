// The bearer token that guards state-changing /actuator requests (RFC 6750), compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto'

export type AuthResult = 'ok' | 'no-token-configured' | 'missing' | 'invalid'

const BEARER = /^Bearer[ \t]+([^ \t]+)[ \t]*$/i

function digest (value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}

/** Checks `Authorization` headers against one configured token (null: none is configured, so nothing is allowed). */
export class BearerGuard {
  private readonly expected: Buffer | null

  constructor (token: string | null) {
    this.expected = token === null || token === '' ? null : digest(token)
  }

  check (authorization: string | undefined): AuthResult {
    if (this.expected === null) return 'no-token-configured'
    if (authorization === undefined || authorization === '') return 'missing'
    const match = BEARER.exec(authorization)
    // Digests have one length whatever was sent, so the comparison neither throws nor tells the token's length.
    const given = digest(match?.[1] ?? '')
    const equal = timingSafeEqual(given, this.expected)
    return match !== null && equal ? 'ok' : 'invalid'
  }
}
