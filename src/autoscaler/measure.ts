// Measuring a Redis master from its INFO text: one sample per interval, and CPU and memory percentages from samples (pure).

/** One reading of a node's INFO, taken at `atMs` on the autoscaler's clock. */
export interface NodeSample {
  /** `host:port` as the cluster announces it. */
  readonly node: string
  readonly atMs: number
  /** used_cpu_sys + used_cpu_user: CPU seconds the server has used since it started. */
  readonly cpuSeconds: number
  /** Bytes. */
  readonly usedMemory: number
  /** Bytes; 0: no maxmemory set. */
  readonly maxMemory: number
  /** Bytes; 0 where Redis cannot tell. */
  readonly totalSystemMemory: number
  /** Changes on every start: counters of two samples with different run ids cannot be compared. */
  readonly runId: string
  readonly uptimeSeconds: number
}

/** INFO text as sections (`cpu`, `memory`, ... lower-cased, as INFO takes them) of `field -> value`. */
export type InfoSections = ReadonlyMap<string, ReadonlyMap<string, string>>

/** INFO text that lacks a field a sample needs, or holds something else than a number there. */
export class InfoParseError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InfoParseError'
  }
}

/**
 * Parses INFO (or CLUSTER INFO) text: `# Section` headers, `field:value` lines, CRLF or LF.
 * Fields before any header go in the section named ''. A value keeps any colon of its own (`executable:/usr/bin/x` is fine, so is an IPv6 address).
 */
export function parseInfoSections (text: string): InfoSections {
  const sections = new Map<string, Map<string, string>>()
  let current = new Map<string, string>()
  sections.set('', current)
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '')
    if (line.startsWith('#')) {
      current = new Map()
      sections.set(line.slice(1).trim().toLowerCase(), current)
      continue
    }
    const colon = line.indexOf(':')
    if (colon > 0) current.set(line.slice(0, colon), line.slice(colon + 1))
  }
  return sections
}

function field (sections: InfoSections, section: string, name: string): string {
  const value = sections.get(section)?.get(name)
  if (value === undefined) throw new InfoParseError(`INFO has no ${name} in # ${section} (ask for INFO server cpu memory, or plain INFO)`)
  return value
}

function numberField (sections: InfoSections, section: string, name: string): number {
  const text = field(sections, section, name)
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) throw new InfoParseError(`INFO ${name} is not a number >= 0: ${JSON.stringify(text)}`)
  return value
}

/** A sample of `node` from its INFO text (the `server`, `cpu` and `memory` sections at least); throws InfoParseError when one is missing. */
export function sampleFromInfo (node: string, atMs: number, text: string): NodeSample {
  const sections = parseInfoSections(text)
  return {
    node,
    atMs,
    cpuSeconds: numberField(sections, 'cpu', 'used_cpu_sys') + numberField(sections, 'cpu', 'used_cpu_user'),
    usedMemory: numberField(sections, 'memory', 'used_memory'),
    maxMemory: numberField(sections, 'memory', 'maxmemory'),
    totalSystemMemory: numberField(sections, 'memory', 'total_system_memory'),
    runId: field(sections, 'server', 'run_id'),
    uptimeSeconds: numberField(sections, 'server', 'uptime_in_seconds')
  }
}

/**
 * CPU % over the interval between two samples of one node: delta(used_cpu_sys + used_cpu_user) / delta(wall) x 100.
 * null when it is unknown for that interval: another node, the server restarted in between (a new run_id, or
 * counters or uptime that went down), or no wall time passed.
 * A negative or made-up figure would drag a window's average the wrong way; a missing one only makes it shorter.
 * Not capped at 100: with io-threads a server can use more than one core.
 */
export function cpuPercent (previous: NodeSample, current: NodeSample, wallMsDelta: number): number | null {
  if (previous.node !== current.node || previous.runId !== current.runId) return null
  if (current.cpuSeconds < previous.cpuSeconds || current.uptimeSeconds < previous.uptimeSeconds) return null
  if (!(wallMsDelta > 0)) return null
  return (current.cpuSeconds - previous.cpuSeconds) * 1000 / wallMsDelta * 100
}

/**
 * Memory %: used_memory over maxmemory, or over total_system_memory when maxmemory is 0 (no limit: the host's RAM is the limit).
 * null when neither is known (total_system_memory is 0 where Redis cannot read it).
 */
export function memoryPercent (sample: NodeSample): number | null {
  const limit = sample.maxMemory > 0 ? sample.maxMemory : sample.totalSystemMemory
  return limit > 0 ? sample.usedMemory / limit * 100 : null
}

/** One interval's load of one master, in percent; null: unknown for that interval (the first sample, a restart). */
export interface NodeLoad {
  readonly node: string
  readonly atMs: number
  readonly cpu: number | null
  readonly memory: number | null
}

/** The load `current` shows, its CPU measured since `previous` (the node's sample one interval before; none for the first). */
export function loadOf (previous: NodeSample | undefined, current: NodeSample): NodeLoad {
  return {
    node: current.node,
    atMs: current.atMs,
    cpu: previous === undefined ? null : cpuPercent(previous, current, current.atMs - previous.atMs),
    memory: memoryPercent(current)
  }
}
