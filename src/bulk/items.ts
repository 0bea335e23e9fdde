// A bulk item as a client sends it: whether its Content-Type and Content-Encoding can carry one, and its body checked as one JSON value.
import type { BulkFormat } from './bulk-writer.js'

/** RFC 6839 section 3.1: `+json` media types are JSON too. */
const JSON_MEDIA_TYPE = /^application\/(?:json|[a-z0-9!#$&^_.+-]+\+json)$/

/** Why a body with these headers cannot be an item (RFC 9110 sections 8.3 and 8.4), or null when it can. */
export function contentTypeRefusal (contentType: string | undefined, contentEncoding: string | undefined): string | null {
  if (contentType === 'application/json' && contentEncoding === undefined) return null
  if (contentType === undefined) return 'send the item with Content-Type: application/json'
  const [mediaType = '', ...parameters] = contentType.split(';')
  if (!JSON_MEDIA_TYPE.test(mediaType.trim().toLowerCase())) return `expected Content-Type application/json, got ${contentType}`
  for (const parameter of parameters) {
    const [name = '', value = ''] = parameter.split('=')
    if (name.trim().toLowerCase() === 'charset' && !/^"?utf-8"?$/i.test(value.trim())) return `JSON is UTF-8 (RFC 8259 section 8.1), got ${contentType}`
  }
  if (contentEncoding !== undefined && contentEncoding.trim().toLowerCase() !== 'identity') {
    return `the gateway does not decode Content-Encoding ${contentEncoding}: send the item uncompressed`
  }
  return null
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d])

/**
 * The item as sent upstream (the client's bytes, without surrounding whitespace), or why it is not one: one JSON
 * value (RFC 8259), and for ndjson one that fits on its line.
 */
export function itemOf (body: Buffer, format: BulkFormat): Buffer | string {
  let start = 0
  let end = body.length
  while (start < end && WHITESPACE.has(body[start] as number)) start++
  while (end > start && WHITESPACE.has(body[end - 1] as number)) end--
  if (start === end) return 'the body is empty: an item is one JSON value'
  const item = body.subarray(start, end)
  try {
    JSON.parse(item.toString('utf8'))
  } catch (err) {
    return `the body is not JSON: ${(err as Error).message}`
  }
  // Inside a JSON string a line break is always escaped, so a raw one is whitespace between tokens: ndjson forbids it.
  if (format === 'ndjson' && (item.includes(0x0a) || item.includes(0x0d))) return 'an ndjson item must be on one line: send it without line breaks'
  return item
}
