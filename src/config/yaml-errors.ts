// YAML syntax errors as a user can act on them: an indentation mistake is reported at the line that is wrong, in plain words.
import type { YAMLError } from 'yaml'
import type { ConfigIssue } from './config-error.js'

/**
 * The yaml library's errors that, in a config file, nearly always mean a line indented wrong (by code and the start of
 * the message: BAD_INDENT is also an unclosed `[`, MISSING_CHAR also a missing `:`).
 */
const INDENTATION_ERRORS: ReadonlyArray<readonly [string, string]> = [
  ['BAD_INDENT', 'All mapping items must start at the same column'],
  ['BLOCK_AS_IMPLICIT_KEY', ''],
  ['MULTILINE_IMPLICIT_KEY', ''],
  ['MISSING_CHAR', 'Sequence item without - indicator'],
  ['TAB_AS_INDENT', '']
]

interface Line {
  /** 1-based. */
  readonly number: number
  /** The line without its indentation. */
  readonly text: string
  /** 1-based column of its first character (the `-` of a sequence item). */
  readonly col: number
  /** 1-based column of its key: after the `- ` of a sequence item. */
  readonly keyCol: number
  readonly item: boolean
  /** The key the line starts with, if any. */
  readonly key: string | null
  /** Whether the key has a value on the same line (`port: 8080`), so nothing may be nested under it. */
  readonly hasValue: boolean
}

/** Line `number` (within `lines`) of `lines`, or null for a blank line or a comment. */
function lineAt (lines: readonly string[], number: number): Line | null {
  const raw = (lines[number - 1] as string).replace(/\r$/, '')
  const text = raw.trim()
  if (text === '' || text.startsWith('#')) return null
  const indent = raw.length - raw.trimStart().length
  const item = /^- +/.exec(text)?.[0] ?? ''
  const key = /^([^\s:#][^:#]*?):(?:\s+(.*))?$/.exec(text.slice(item.length))
  return {
    number,
    text,
    col: indent + 1,
    keyCol: indent + item.length + 1,
    item: item !== '',
    key: key === null ? null : (key[1] as string).trim(),
    hasValue: key !== null && (key[2] ?? '').replace(/\s*#.*$/, '') !== ''
  }
}

/** The content lines from `from` on (or back from it, with `step` -1). */
function * contentLines (lines: readonly string[], from: number, step: 1 | -1): Generator<Line> {
  for (let n = from; n >= 1 && n <= lines.length; n += step) {
    const line = lineAt(lines, n)
    if (line !== null) yield line
  }
}

const named = (line: Line): string => `"${line.key ?? line.text}" (line ${line.number})`

/**
 * A plain message for a YAML error, at the line that is wrong, or null when the error is not about indentation.
 * `at` is where the yaml library put the error: on a value (`port: 8080`) when the line after it is indented under it.
 */
export function indentationIssue (text: string, error: YAMLError, at: { line: number, col: number }): ConfigIssue | null {
  if (!INDENTATION_ERRORS.some(([code, message]) => error.code === code && error.message.startsWith(message))) return null
  if (error.code === 'TAB_AS_INDENT') return { line: at.line, col: at.col, path: '', message: 'bad indentation: a tab; YAML indents with spaces only' }
  const lines = text.split('\n')
  const here = lineAt(lines, at.line)
  // Past the start of its line, the error sits on a value, and the line after it is the one indented too deep. With
  // none after it, the value itself is wrong (`port: host: x`): the library's own message says it best.
  const wrong = contentLines(lines, here !== null && at.col > here.col ? at.line + 1 : at.line, 1).next().value as Line | undefined
  if (wrong === undefined) return null
  const what = `"${wrong.key ?? wrong.text}"`
  const before = [...contentLines(lines, wrong.number - 1, -1)]
  const previous = before[0]
  if (previous?.hasValue === true && wrong.col > previous.keyCol) {
    return {
      line: wrong.number,
      col: wrong.col,
      path: '',
      message: `bad indentation: ${what} is indented under ${named(previous)}, which has a value already; line it up with it at column ${previous.keyCol}`
    }
  }
  // The columns it could mean: the line before it, then each enclosing level. An item lines up by its `-`.
  const columnOf = (line: Line): number => wrong.item ? line.col : line.keyCol
  const candidates: Line[] = []
  for (const line of before) {
    const last = candidates.at(-1)
    if ((last === undefined || columnOf(line) < columnOf(last)) && columnOf(line) !== wrong.col) candidates.push(line)
    if (candidates.length === 3) break
  }
  const expected = candidates.map((line, i) => `${i === 0 ? '; expected' : ', or'} column ${columnOf(line)} as ${named(line)}`).join('')
  return { line: wrong.number, col: wrong.col, path: '', message: `bad indentation: ${what} at column ${wrong.col} lines up with nothing above it${expected}` }
}
