// A stored response as one binary-safe Buffer: a small framed JSON head, then the body bytes exactly as received.
import type CachePolicy from 'http-cache-semantics'

/**
 * Response header fields as stored: lower-case names, no hop-by-hop fields, a repeated field joined into one value
 * (RFC 9110 section 5.3). Only `set-cookie` may stay a list, since its values cannot be joined (RFC 6265 section 3).
 */
export type StoredHeaders = Readonly<Record<string, string | string[]>>

/**
 * http-cache-semantics' `toObject()` without the response status and header fields (`st`, `resh`): those are the
 * entry's own `status` and `headers`, kept once. The policy in `policy.ts` puts them back before use.
 */
export type PolicyState = Omit<CachePolicy.CachePolicyObject, 'st' | 'resh'>

/** Everything stored about a response but its body. */
export interface EntryHead {
  readonly status: number
  readonly headers: StoredHeaders
  /** When the response was received, in ms since the epoch. */
  readonly storedAt: number
  /** The path the client asked for, without the query: what a purge by path prefix filters on. */
  readonly path: string
  readonly policy: PolicyState
}

export interface CacheEntry extends EntryHead {
  /** The body as the upstream sent it; a compressed body stays compressed (its Content-Encoding is stored too). */
  readonly body: Buffer
}

/**
 * Bumped whenever the layout or the head's meaning changes: entries written by another version decode as a miss,
 * so a rolling deploy only costs refetches.
 */
export const ENTRY_FORMAT_VERSION = 1

/** `B`, `W`: tells an entry from any other value under the key prefix (an invalidation marker, a lock, garbage). */
const MAGIC_0 = 0x42
const MAGIC_1 = 0x57
/** Magic (2 bytes), version (1), head length (4, big-endian). */
const PREAMBLE_BYTES = 7

/** The http-cache-semantics serialization this code understands (its `toObject().v`). */
const POLICY_OBJECT_VERSION = 1

/**
 * Fields that describe one connection, never stored (RFC 9111 section 3.1, RFC 9110 section 7.6.1); so is every
 * `proxy-*` field (Proxy-Authenticate, Proxy-Connection...): they are for the hop, not for later clients.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

/**
 * The header fields of an upstream response as they are stored: names lower-cased, hop-by-hop fields and those the
 * Connection field names dropped (RFC 9111 section 3.1), repeated fields joined (RFC 9110 section 5.3) but Set-Cookie.
 */
export function storedHeaders (fields: Readonly<Record<string, string | readonly string[] | undefined>>): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {}
  let connection: string | undefined
  for (const rawName in fields) {
    const value = fields[rawName]
    if (value === undefined) continue
    const name = rawName.toLowerCase()
    if (name === 'connection') connection = typeof value === 'string' ? value : value.join(',')
    if (HOP_BY_HOP.has(name) || name.startsWith('proxy-')) continue
    headers[name] = typeof value === 'string' ? value : name === 'set-cookie' ? [...value] : value.join(', ')
  }
  if (connection !== undefined) {
    for (const token of connection.split(',')) delete headers[token.trim().toLowerCase()]
  }
  return headers
}

/** One Buffer: `BW`, the format version, the head's length (uint32 big-endian), the head as UTF-8 JSON, the body. */
export function encodeEntry (entry: CacheEntry): Buffer {
  const { body, ...head } = entry
  const json = Buffer.from(JSON.stringify(head), 'utf8')
  const preamble = Buffer.allocUnsafe(PREAMBLE_BYTES)
  preamble[0] = MAGIC_0
  preamble[1] = MAGIC_1
  preamble[2] = ENTRY_FORMAT_VERSION
  preamble.writeUInt32BE(json.length, 3)
  return Buffer.concat([preamble, json, body])
}

/**
 * The entry in `value`, or null for anything else: too short, another magic or format version, a head that is not
 * the JSON this version writes. Never throws: a bad value is a miss. The body is a view into `value`, not a copy.
 */
export function decodeEntry (value: Buffer): CacheEntry | null {
  if (value.length < PREAMBLE_BYTES || value[0] !== MAGIC_0 || value[1] !== MAGIC_1 || value[2] !== ENTRY_FORMAT_VERSION) return null
  const headLength = value.readUInt32BE(3)
  const bodyStart = PREAMBLE_BYTES + headLength
  if (bodyStart > value.length) return null
  let head: unknown
  try {
    head = JSON.parse(value.toString('utf8', PREAMBLE_BYTES, bodyStart))
  } catch {
    return null
  }
  if (!isEntryHead(head)) return null
  return { ...head, body: value.subarray(bodyStart) }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const isFieldValue = (value: unknown): boolean =>
  typeof value === 'string' || (Array.isArray(value) && value.every((item) => typeof item === 'string'))

const isFiniteNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)

function isEntryHead (head: unknown): head is EntryHead {
  if (!isRecord(head)) return false
  const { status, headers, storedAt, path, policy } = head
  return Number.isInteger(status) && (status as number) >= 100 && (status as number) <= 599 &&
    isRecord(headers) && Object.values(headers).every(isFieldValue) &&
    isFiniteNumber(storedAt) && typeof path === 'string' && isPolicyState(policy)
}

/** The fields http-cache-semantics reads after `fromObject`; a missing one would throw later, on a lookup. */
function isPolicyState (policy: unknown): policy is PolicyState {
  if (!isRecord(policy)) return false
  const { v, t, sh, ch, imm, icc, rescc, m, u, h, a, reqh, reqcc } = policy
  return v === POLICY_OBJECT_VERSION && isFiniteNumber(t) && typeof sh === 'boolean' && isFiniteNumber(ch) &&
    (imm === undefined || isFiniteNumber(imm)) && (icc === undefined || typeof icc === 'boolean') &&
    isRecord(rescc) && isRecord(reqcc) && typeof m === 'string' && (u === undefined || typeof u === 'string') &&
    (h === undefined || typeof h === 'string') && typeof a === 'boolean' &&
    (reqh === null || (isRecord(reqh) && Object.values(reqh).every(isFieldValue)))
}
