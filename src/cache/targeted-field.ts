// Targeted cache-control fields (RFC 9213): CDN-Cache-Control and a deployment's own, read as Structured Field Dictionaries.
import { fieldValue, type HeaderFields } from './key.js'

/** The targeted field every shared cache of this kind honours (RFC 9213 section 3). */
export const CDN_CACHE_CONTROL = 'cdn-cache-control'

// RFC 8941 section 3.2 (Dictionary), 3.1.2 (Parameters) and 3.3 (Items), as regular expressions.
const KEY = '[a-z*][a-z0-9_.*-]*'
const BARE_ITEM = [
  '-?\\d{1,12}\\.\\d{1,3}', // Decimal
  '-?\\d{1,15}', // Integer
  '"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\["\\\\])*"', // String
  "[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*", // Token
  ':[A-Za-z0-9+/=]*:', // Byte Sequence
  '\\?[01]' // Boolean
].join('|')
const PARAMETERS = `(?:; *${KEY}(?:=(?:${BARE_ITEM}))?)*`
const ITEM = `(?:${BARE_ITEM})${PARAMETERS}`
const INNER_LIST = `\\( *(?:${ITEM}(?: +${ITEM})*)? *\\)${PARAMETERS}`
/** One member, its key and value (absent: the Boolean true) captured without parameters. */
const MEMBER = `(${KEY})(?:=(${BARE_ITEM}|${INNER_LIST})${PARAMETERS}|${PARAMETERS})`
const DICTIONARY = new RegExp(`^${MEMBER}(?:[ \\t]*,[ \\t]*${MEMBER})*$`)
const EACH_MEMBER = new RegExp(MEMBER, 'y')
const SEPARATOR = /[ \t]*,[ \t]*/y

/**
 * The field names a route's cache obeys, in preference order: its own targeted field, then CDN-Cache-Control
 * (RFC 9213 section 2.2, whose example does the same for `ExampleCDN-Cache-Control`).
 */
export function targetedFields (own: string | undefined): readonly string[] {
  return own === undefined || own === CDN_CACHE_CONTROL ? [CDN_CACHE_CONTROL] : [own, CDN_CACHE_CONTROL]
}

/**
 * The first of `names` (lower-case) present in `headers` with a valid value, as Cache-Control directives; undefined
 * when none is, and then Cache-Control and Expires decide (RFC 9213 section 2.2). A value that is not a Structured
 * Field Dictionary (RFC 8941) is ignored, as is an empty one. Directives keep their values; parameters are dropped;
 * `=?1` is the directive without a value and `=?0` its absence (RFC 9213 section 2.1).
 */
export function targetedCacheControl (headers: HeaderFields, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = fieldValue(headers, name)?.trim()
    if (value !== undefined && value !== '' && DICTIONARY.test(value)) return asCacheControl(value)
  }
  return undefined
}

function asCacheControl (dictionary: string): string {
  const directives: string[] = []
  let index = 0
  while (index < dictionary.length) {
    if (index > 0) {
      SEPARATOR.lastIndex = index
      SEPARATOR.exec(dictionary)
      index = SEPARATOR.lastIndex
    }
    EACH_MEMBER.lastIndex = index
    const [whole, key, value] = EACH_MEMBER.exec(dictionary) as RegExpExecArray
    index += whole.length
    if (value === '?0') continue
    directives.push(value === undefined || value === '?1' ? key as string : `${key as string}=${value}`)
  }
  return directives.join(', ')
}
