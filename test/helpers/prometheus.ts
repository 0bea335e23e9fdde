// A small parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0, so tests assert on values, not on substrings.

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Exposition {
  readonly samples: readonly Sample[]
  /** `# TYPE` by metric family name. */
  readonly types: ReadonlyMap<string, string>
  readonly help: ReadonlyMap<string, string>
  /** OpenMetrics: the text ended with `# EOF`. */
  readonly eof: boolean
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \S+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy

function number (text: string): number {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  return Number(text)
}

function labelsOf (text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {}
  LABEL.lastIndex = 0
  let consumed = 0
  for (let m = LABEL.exec(text); m !== null; m = LABEL.exec(text)) {
    labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c))
    consumed = LABEL.lastIndex
  }
  if (consumed !== text.length) throw new Error(`bad labels in line: ${line}`)
  return labels
}

/** Parses an exposition; throws on any line it does not understand. */
export function parsePrometheus (text: string): Exposition {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  const help = new Map<string, string>()
  let eof = false
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (eof) throw new Error(`content after # EOF: ${line}`)
    if (line === '# EOF') { eof = true; continue }
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
    if (meta !== null) {
      (meta[1] === 'TYPE' ? types : help).set(meta[2] as string, meta[3] as string)
      continue
    }
    const m = SAMPLE.exec(line)
    if (m === null) throw new Error(`not a sample: ${line}`)
    samples.push({ name: m[1] as string, labels: labelsOf(m[2] ?? '', line), value: number(m[3] as string) })
  }
  return { samples, types, help, eof }
}

/** The samples named `name` whose labels include every one of `labels`. */
export function series (exposition: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return exposition.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
}

/** The value of the one sample that matches; throws when none or several do. */
export function valueOf (exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = series(exposition, name, labels)
  if (found.length !== 1) throw new Error(`expected one ${name} ${JSON.stringify(labels)}, found ${found.length}`)
  return (found[0] as Sample).value
}
