// The autoscale bench's markdown report: medians per scenario and candidate, ratios to redis-cli, client ops and errors, checks, per-round figures.
import { summarize } from './stats.js'

/** Issue 7's target: Breakwater within this many times redis-cli's time, with zero client errors. */
export const MAX_RATIO = 1.5

/**
 * @typedef {object} Sample  one candidate's one move in one round
 * @property {number} round
 * @property {string} scenario  e.g. `scale-out idle`
 * @property {string} candidate  its id
 * @property {number} seconds  NaN when the move failed
 * @property {number} slotsMoved  slots whose owner changed, from the slot maps before and after
 * @property {number} keysMoved  keys on the moved slots: the new node's after a scale-out, the drained node's before a scale-in
 * @property {import('./cluster-load.js').LoadResult | null} load  the client load's figures, under load
 * @property {string[]} failures  checks that failed; empty when all passed
 * @property {boolean} quiet  whether other processes were quiet before the move
 * @property {Record<string, { calls: number, usec: number }>} commands  admin commands the nodes served during the move (INFO commandstats)
 * @property {Record<string, unknown>} [detail]  the candidate's own figures
 */

/**
 * @typedef {object} ReportInput
 * @property {readonly { id: string, label: string }[]} candidates  the baseline (redis-cli) first
 * @property {readonly string[]} scenarios
 * @property {readonly Sample[]} samples
 * @property {Record<string, string>} env
 * @property {{ rounds: number, keys: number, pipeline: number, workers: number }} options
 */

const seconds = (/** @type {number} */ n) => Number.isFinite(n) ? n.toFixed(2) : '—'
const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })
const count = (/** @type {number} */ n) => Number.isFinite(n) ? int.format(n) : '—'
const range = (/** @type {import('./stats.js').Summary} */ s) => s.min === s.max ? seconds(s.median) : `${seconds(s.median)} (${seconds(s.min)}–${seconds(s.max)})`

/**
 * The summary table, a target line per Breakwater candidate, and notes.
 * @param {ReportInput} input
 */
export function formatTable (input) {
  const [baseline, ...others] = input.candidates
  if (baseline === undefined) throw new Error('expected at least one candidate')
  const names = input.candidates.map((c) => c.label).join(' / ')
  const header = [
    'scenario', `${baseline.label} s (median, min–max)`,
    ...others.flatMap((c) => [`${c.label} s`, `${c.label} / ${baseline.label}`]),
    'slots moved', 'keys moved', `admin commands (${names})`, `client ops (${names})`, `client errors (${names})`
  ]
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => i === 0 ? '---' : '---:').join('|')}|`]
  /** @type {string[]} */
  const verdicts = []
  for (const scenario of input.scenarios) {
    const of = (/** @type {string} */ id) => input.samples.filter((s) => s.scenario === scenario && s.candidate === id)
    const time = (/** @type {string} */ id) => summarize(of(id).map((s) => s.seconds))
    const base = time(baseline.id)
    const all = input.samples.filter((s) => s.scenario === scenario)
    const underLoad = all.some((s) => s.load !== null)
    const ops = input.candidates.map((c) => underLoad ? count(summarize(of(c.id).map((s) => s.load?.ops ?? NaN)).median) : '—').join(' / ')
    const errors = input.candidates.map((c) => underLoad ? count(of(c.id).reduce((sum, s) => sum + (s.load?.errors ?? 0), 0)) : '—').join(' / ')
    const admin = input.candidates.map((c) => count(summarize(of(c.id).map((s) => totalCalls(s.commands))).median)).join(' / ')
    const cells = [
      scenario, range(base),
      ...others.flatMap((c) => {
        const ratio = time(c.id).median / base.median
        return [range(time(c.id)), Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '—']
      }),
      count(summarize(all.map((s) => s.slotsMoved)).median), count(summarize(all.map((s) => s.keysMoved)).median), admin, ops, errors
    ]
    lines.push(`| ${cells.join(' | ')} |`)
    for (const c of others) {
      const ratio = time(c.id).median / base.median
      const clientErrors = of(c.id).reduce((sum, s) => sum + (s.load?.errors ?? 0), 0)
      const failed = of(c.id).filter((s) => s.failures.length > 0).length
      const met = ratio <= MAX_RATIO && clientErrors === 0 && failed === 0
      verdicts.push(`- ${scenario}, ${c.label}: ${met ? 'met' : 'MISSED'} (${Number.isFinite(ratio) ? ratio.toFixed(2) : '—'}x ≤ ${MAX_RATIO}x, ` +
        `${clientErrors} client errors, ${failed === 0 ? 'every check passed' : `${failed} round(s) failed a check`})`)
    }
  }
  const failedChecks = input.samples.filter((s) => s.failures.length > 0)
  return [
    ...lines,
    '',
    `Target (issue 7): each candidate within ${MAX_RATIO}x of ${baseline.label}'s median time, zero client errors, every check passed.`,
    ...verdicts,
    ...(failedChecks.length === 0 ? [] : ['', 'Failed checks:', ...failedChecks.map((s) => `- round ${s.round}, ${s.scenario}, ${s.candidate}: ${s.failures.join('; ')}`)])
  ].join('\n')
}

/** Admin commands in all. */
function totalCalls (/** @type {Record<string, { calls: number }>} */ commands) {
  return Object.values(commands).reduce((sum, entry) => sum + entry.calls, 0)
}

/**
 * The whole report: the table, the method, the per-round figures and, when profiled, where Breakwater's time went.
 * @param {ReportInput} input
 */
export function formatReport (input) {
  const { options, env } = input
  const perRound = [
    '| round | scenario | candidate | seconds | slots | keys | client ops | client errors | client p50 / p99 / max ms | load keys unreadable | checks | quiet before |',
    '|---:|---|---|---:|---:|---:|---:|---:|---|---:|---|---|'
  ]
  for (const s of input.samples) {
    const kinds = s.load === null ? '' : Object.entries(s.load.errorKinds).map(([kind, n]) => `${n}× ${kind}`).join('; ')
    const unreadable = s.load === null ? '—' : count(s.load.verify.missing + s.load.verify.wrong + s.load.verify.failed)
    const latency = s.load === null ? '—' : [s.load.latencyMs.p50, s.load.latencyMs.p99, s.load.latencyMs.max].map((n) => n.toFixed(1)).join(' / ')
    perRound.push(`| ${s.round} | ${s.scenario} | ${s.candidate} | ${seconds(s.seconds)} | ${count(s.slotsMoved)} | ${count(s.keysMoved)} | ` +
      `${s.load === null ? '—' : count(s.load.ops)} | ${s.load === null ? '—' : `${count(s.load.errors)}${kinds === '' ? '' : ` (${kinds})`}`} | ${latency} | ${unreadable} | ` +
      `${s.failures.length === 0 ? 'ok' : s.failures.join('; ')} | ${s.quiet ? 'yes' : 'no'} |`)
  }
  const commandLines = ['', '## Admin commands per move', '',
    'What the nodes served during the move (INFO commandstats on every node, before and after, less the load\'s GET, SET ' +
      'and ASKING, ioredis\' CLUSTER SLOTS and the bench\'s INFO): medians over the rounds. Server time is the time Redis ' +
      'spent executing them, not counting the round trips between them.', '',
    '| scenario | candidate | commands | per slot moved | CLUSTER SETSLOT | MIGRATE | CLUSTER GETKEYSINSLOT | other | Redis server time ms |',
    '|---|---|---:|---:|---:|---:|---:|---|---:|']
  for (const scenario of input.scenarios) {
    for (const c of input.candidates) {
      const runs = input.samples.filter((s) => s.scenario === scenario && s.candidate === c.id && Number.isFinite(s.seconds))
      if (runs.length === 0) continue
      const med = (/** @type {(s: Sample) => number} */ f) => summarize(runs.map(f)).median
      const calls = (/** @type {Sample} */ s, /** @type {string} */ name) => s.commands[name]?.calls ?? 0
      const known = ['cluster|setslot', 'migrate', 'cluster|getkeysinslot']
      const names = [...new Set(runs.flatMap((s) => Object.keys(s.commands)))].filter((name) => !known.includes(name))
      const other = names.map((name) => [name, med((s) => calls(s, name))]).filter(([, n]) => Number(n) > 0)
        .sort(([, a], [, b]) => Number(b) - Number(a)).map(([name, n]) => `${name} ${count(Number(n))}`).join(', ')
      commandLines.push(`| ${scenario} | ${c.label} | ${count(med((s) => totalCalls(s.commands)))} | ${med((s) => totalCalls(s.commands) / s.slotsMoved).toFixed(2)} | ` +
        `${count(med((s) => calls(s, 'cluster|setslot')))} | ${count(med((s) => calls(s, 'migrate')))} | ${count(med((s) => calls(s, 'cluster|getkeysinslot')))} | ${other} | ` +
        `${count(med((s) => Object.values(s.commands).reduce((sum, e) => sum + e.usec, 0) / 1000))} |`)
    }
  }
  const profiles = input.samples.filter((s) => s.detail?.commands !== undefined)
  const profileLines = profiles.length === 0
    ? []
    : ['', '## Where Breakwater\'s time went (per command: calls, summed ms awaiting them; parallel calls overlap)', '',
        ...profiles.map((s) => {
          const commands = /** @type {Record<string, { calls: number, ms: number }>} */ (s.detail?.commands)
          const rows = Object.entries(commands).sort(([, a], [, b]) => b.ms - a.ms)
            .map(([name, { calls, ms }]) => `${name} ${int.format(calls)} calls ${int.format(ms)} ms (${(ms / calls).toFixed(2)} ms each)`)
          const cpu = typeof s.detail?.cpuSeconds === 'number' ? `, ${seconds(s.detail.cpuSeconds)} s of CPU` : ''
          return `- round ${s.round}, ${s.scenario}, ${s.candidate} (${seconds(s.seconds)} s${cpu}): ${rows.join('; ')}`
        })]
  return [
    '# Autoscale bench: Breakwater\'s ClusterAdmin against redis-cli --cluster',
    '',
    `${env.date}; ${env.commit}; node ${env.node}; ${env.redis}; ${options.rounds} interleaved rounds; ` +
      `${int.format(options.keys)} keys; ${options.pipeline} keys per MIGRATE; ${options.workers} load workers; redis-server dirs under ${env.dir}.`,
    '',
    formatTable(input),
    '',
    'Each run: a fresh cluster of 3 masters (no replicas) and 1 spare, the keys written, then a scale-out to 4 masters ' +
      'and a scale-in of the added master back to 3, each timed from its first command to its end and checked (masters, ' +
      'slots even within 2%, every key read back, no open slot, `redis-cli --cluster check` clean). Under load, the ' +
      'gateway\'s Cluster client (no offline queue, no retries, 100 ms command timeout) runs GETs of existing keys and ' +
      'SETs of new ones throughout the move; every SET it saw acknowledged is read back after. The movers run pinned ' +
      'to CPU 0, the redis-servers and the load on CPU 1. Quote the ratios, not the seconds.',
    '',
    '## Per round',
    '',
    ...perRound,
    ...commandLines,
    ...profileLines
  ].join('\n')
}
