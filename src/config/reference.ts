// The README's config reference, rendered from ConfigSchema so that the documentation and the validator cannot disagree.
import { ConfigSchema } from './schema.js'

/** The README block between these markers is this module's output (`npm run docs` rewrites it; a test compares). */
export const CONFIG_REFERENCE_START = '<!-- config-reference:start -->'
export const CONFIG_REFERENCE_END = '<!-- config-reference:end -->'

/** The part of JSON Schema that ConfigSchema uses. */
interface JsonSchema {
  readonly type?: string
  readonly description?: string
  readonly default?: unknown
  readonly pattern?: string
  readonly enum?: readonly unknown[]
  readonly items?: JsonSchema
  readonly anyOf?: readonly JsonSchema[]
  readonly properties?: Readonly<Record<string, JsonSchema>>
  readonly patternProperties?: Readonly<Record<string, JsonSchema>>
  readonly required?: readonly string[]
  readonly minimum?: number
  readonly maximum?: number
  readonly minItems?: number
  readonly minLength?: number
  readonly uniqueItems?: boolean
  readonly 'x-expected'?: string
}

interface Row { key: string, type: string, default: string, description: string }

const code = (value: unknown): string => `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``
const cell = (text: string): string => text.replace(/\|/g, '\\|')
/** `a`, `a and b`, `a, b and c` (the items are key names: no commas of their own). */
const list = (items: readonly string[]): string => items.join(', ').replace(/, ([^,]*)$/, ' and $1')

const PLURALS: Readonly<Record<string, string>> = { string: 'strings', integer: 'integers', number: 'numbers', boolean: 'booleans', object: 'maps' }

/** What a value must look like: the schema's own words (`x-expected`) when it has them, else its type and limits. */
function typeOf (schema: JsonSchema, plural = false): string {
  if (schema['x-expected'] !== undefined) return schema['x-expected'].replace(/^(a|an) /, '')
  if (schema.enum !== undefined) return `${plural ? '' : 'one of '}${schema.enum.map(code).join(', ')}`
  if (schema.anyOf !== undefined) return schema.anyOf.map((member) => typeOf(member)).join(' or ')
  if (schema.type === 'array' && schema.items !== undefined) {
    const nonEmpty = (schema.minItems ?? 0) > 0 ? 'non-empty ' : ''
    const unique = schema.uniqueItems === true ? ' without duplicates' : ''
    return `${nonEmpty}list${unique} of ${typeOf(schema.items, true)}`
  }
  if (schema.type === 'object' && schema.patternProperties !== undefined) {
    const [value] = Object.values(schema.patternProperties)
    return `map of string to ${value === undefined ? 'any' : typeOf(value)}`
  }
  if (schema.pattern !== undefined) return `string matching ${code(schema.pattern)}`
  const type = schema.type ?? 'any'
  const limits = [
    schema.minimum === undefined ? '' : `>= ${schema.minimum}`,
    schema.maximum === undefined ? '' : `<= ${schema.maximum}`
  ].filter((limit) => limit !== '').join(', ')
  const noun = plural ? PLURALS[type] ?? type : type
  return `${(schema.minLength ?? 0) > 0 ? 'non-empty ' : ''}${noun}${limits === '' ? '' : ` ${limits}`}`
}

/** A description may end with `Default: <words>` for defaults that are not a value; those go in the default column. */
function describe (schema: JsonSchema, required: boolean): { default: string, description: string } {
  const description = schema.description ?? ''
  const match = /^(.*?)\.? Default: (.+)$/.exec(description)
  if (schema.default !== undefined) return { default: code(schema.default), description }
  if (match !== null) return { default: match[2] ?? '', description: match[1] ?? '' }
  return { default: required ? 'required' : '', description }
}

/** Object schemas whose every key is also a key of `of` with the same schema, as `defaults` is of a route. */
function isSubsetOf (schema: JsonSchema, of: JsonSchema): boolean {
  const keys = Object.keys(schema.properties ?? {})
  return keys.length > 0 && keys.every((key) => JSON.stringify(schema.properties?.[key]) === JSON.stringify(of.properties?.[key]))
}

function walk (key: string, schema: JsonSchema, required: boolean, rows: Row[], route: JsonSchema): void {
  if (schema.type === 'object' && schema.properties !== undefined) {
    if (schema !== route && isSubsetOf(schema, route)) {
      const except = Object.keys(route.properties ?? {}).filter((name) => schema.properties?.[name] === undefined)
      rows.push({
        key: `${key}.<route key>`,
        type: `any \`routes[]\` key but ${list(except.map(code))}`,
        default: '',
        description: schema.description ?? ''
      })
      return
    }
    if (schema.description !== undefined) rows.push({ key, type: 'map', default: '', description: schema.description })
    for (const [name, property] of Object.entries(schema.properties)) {
      walk(key === '' ? name : `${key}.${name}`, property, schema.required?.includes(name) ?? false, rows, route)
    }
    return
  }
  rows.push({ key, type: typeOf(schema), ...describe(schema, required) })
  if (schema.type === 'array' && schema.items?.properties !== undefined) walk(`${key}[]`, schema.items, false, rows, route)
}

/** The config reference as markdown: one line on `defaults`, then a table with a row per key. Ends with a newline. */
export function renderConfigReference (): string {
  const schema = ConfigSchema as JsonSchema
  const route = schema.properties?.routes?.items ?? {}
  const rows: Row[] = []
  walk('', schema, false, rows, route)

  const policyKeys = Object.keys(schema.properties?.defaults?.properties ?? {})
  const routeOnly = Object.keys(route.properties ?? {}).filter((name) => !policyKeys.includes(name))
  const lines = [
    `Every \`routes[]\` key except ${list(routeOnly.map(code))} may also be set under \`defaults\`, for every route that does not set it.`,
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
    ...rows.map((row) => `| ${[code(row.key), row.type, row.default, row.description].map(cell).join(' | ')} |`)
  ]
  return lines.join('\n') + '\n'
}
