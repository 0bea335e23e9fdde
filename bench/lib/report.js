// The markdown report of a scenario run: the summary table (medians, min-max, ratios to the baseline), target checks, and per-round figures.
import { TAINT_CPU } from './runner.js'
import { summarize } from './stats.js'

/**
 * @typedef {import('./runner.js').ScenarioResult} ScenarioResult
 * @typedef {import('./runner.js').Sample} Sample
 */

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })
const fixed = (/** @type {number} */ n, /** @type {number} */ digits) => Number.isFinite(n) ? n.toFixed(digits) : '—'
const ratio = (/** @type {number} */ n) => Number.isFinite(n) ? `${n.toFixed(2)}x` : '—'
const range = (/** @type {import('./stats.js').Summary} */ s, /** @type {(n: number) => string} */ format) =>
  s.min === s.max ? format(s.median) : `${format(s.median)} (${format(s.min)}–${format(s.max)})`
const ms = (/** @type {number} */ n) => `${fixed(n, 2)} ms`

/**
 * The figures of each row, with ratios to the baseline row: of the medians, and per round (same round's baseline).
 * @param {ScenarioResult} result
 */
export function figures (result) {
  const baseline = result.rows.find((row) => row.candidate.baseline === true)
  return result.rows.map((row) => {
    const pick = (/** @type {(s: Sample) => number} */ f) => summarize(row.samples.map(f))
    const rps = pick((s) => s.rps)
    const p50 = pick((s) => s.p50Ms)
    const p99 = pick((s) => s.p99Ms)
    const p99Saturated = pick((s) => s.p99ThroughputMs)
    const cpu = pick((s) => s.cpuUsPerRequest)
    const perRound = (/** @type {(s: Sample) => number} */ f) => summarize(row.samples.map((s, i) => {
      const base = baseline?.samples[i]
      return base === undefined ? NaN : f(s) / f(base)
    }))
    const baseRps = baseline === undefined ? NaN : summarize(baseline.samples.map((s) => s.rps)).median
    const baseP99 = baseline === undefined ? NaN : summarize(baseline.samples.map((s) => s.p99Ms)).median
    const baseP99Saturated = baseline === undefined ? NaN : summarize(baseline.samples.map((s) => s.p99ThroughputMs)).median
    return {
      row,
      rps,
      p50,
      p99,
      cpu,
      rpsRatio: rps.median / baseRps,
      rpsRatioPerRound: perRound((s) => s.rps),
      p99Ratio: p99.median / baseP99,
      p99RatioPerRound: perRound((s) => s.p99Ms),
      p99Saturated,
      p99SaturatedRatio: p99Saturated.median / baseP99Saturated,
      proxyCpuShare: pick((s) => s.proxyCpuShare),
      loadCpuShare: pick((s) => s.loadCpuShare),

      errors: row.samples.reduce((sum, s) => sum + s.errors, 0)
    }
  })
}

/**
 * The summary table.
 * @param {ScenarioResult} result
 */
export function formatTable (result) {
  const { throughputConnections: c, latencyConnections: l } = result.options
  const lines = [
    `| candidate | requests/s at -c${c} (median, min–max) | ratio to baseline | p50 at -c${l} | p99 at -c${l} | p99 ratio | p99 at -c${c} (ratio) | CPU µs/request |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|'
  ]
  for (const f of figures(result)) {
    const perRound = (/** @type {import('./stats.js').Summary} */ s) => Number.isFinite(s.min) && s.min !== s.max ? ` (${fixed(s.min, 2)}–${fixed(s.max, 2)})` : ''
    lines.push(`| ${f.row.candidate.label}${f.errors > 0 ? ' ⚠ errors' : ''} ` +
      `| ${range(f.rps, (n) => int.format(n))} ` +
      `| ${ratio(f.rpsRatio)}${f.row.candidate.baseline === true ? '' : perRound(f.rpsRatioPerRound)} ` +
      `| ${ms(f.p50.median)} ` +
      `| ${range(f.p99, ms)} ` +
      `| ${ratio(f.p99Ratio)}${f.row.candidate.baseline === true ? '' : perRound(f.p99RatioPerRound)} ` +
      `| ${ms(f.p99Saturated.median)} (${ratio(f.p99SaturatedRatio)}) ` +
      `| ${range(f.cpu, (n) => fixed(n, 1))}${f.row.candidate.note === undefined ? '' : ` ${f.row.candidate.note}`} |`)
  }
  return lines.join('\n')
}

/**
 * The scenario's observed figures (`Scenario.figures`), medians with min–max, and for a `reduction` figure how many
 * times fewer than the baseline's; empty when the scenario observes nothing.
 * @param {ScenarioResult} result
 * @returns {string}
 */
export function formatFigures (result) {
  const columns = result.scenario.figures ?? []
  if (columns.length === 0) return ''
  const connections = (/** @type {import('./runner.js').RunKind} */ run) =>
    run === 'throughput' ? result.options.throughputConnections : result.options.latencyConnections
  const headings = columns.flatMap((f) => [
    `${f.label} at -c${connections(f.run)}`,
    ...(f.reduction === true ? [`${f.label}: reduction`] : [])
  ])
  const lines = [
    `| candidate | ${headings.join(' | ')} |`,
    `|---|${headings.map(() => '---:').join('|')}|`
  ]
  for (const row of result.rows) {
    const cells = columns.flatMap((f) => {
      const s = observed(row, f)
      // NaN: the candidate has none of it (no bulk request through the plain proxies).
      const value = Number.isNaN(s.median) ? '—' : range(s, (n) => fixed(n, f.digits ?? 2))
      if (f.reduction !== true) return [value]
      return [value, row.candidate.baseline === true ? '—' : times(reductionOf(result, row, f))]
    })
    lines.push(`| ${row.candidate.label} | ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}

/**
 * One observed figure of a row over its rounds.
 * @param {ScenarioResult['rows'][number]} row
 * @param {{ run: import('./runner.js').RunKind, key: string }} figure
 */
function observed (row, { run, key }) {
  return summarize(row.samples.map((s) => s.figures[run][key] ?? NaN))
}

/**
 * The baseline's median of a figure over the row's: how many times fewer (upstream requests per write).
 * @param {ScenarioResult} result
 * @param {ScenarioResult['rows'][number]} row
 * @param {{ run: import('./runner.js').RunKind, key: string }} figure
 */
function reductionOf (result, row, figure) {
  const baseline = result.rows.find((r) => r.candidate.baseline === true)
  return baseline === undefined ? NaN : observed(baseline, figure).median / observed(row, figure).median
}

/** A reduction factor: `1,000x`; infinite when the candidate's figure is 0 (no upstream request at all). */
const times = (/** @type {number} */ n) => Number.isNaN(n) ? '—' : n === Infinity ? '∞' : `${int.format(n)}x`

/**
 * The label of an observed figure, as the scenario declares it, with its run's connections.
 * @param {ScenarioResult} result
 * @param {{ run: import('./runner.js').RunKind, key: string }} figure
 */
function figureLabel (result, { run, key }) {
  const declared = result.scenario.figures?.find((f) => f.run === run && f.key === key)
  const connections = run === 'throughput' ? result.options.throughputConnections : result.options.latencyConnections
  return `${declared?.label ?? key} at -c${connections}`
}

/**
 * The issue's targets, each met or missed, on the medians.
 * @param {ScenarioResult} result
 * @returns {string[]}
 */
export function checkTargets (result) {
  const all = figures(result)
  return (result.scenario.targets ?? []).flatMap((target) => all.filter((x) => x.row.candidate.id === target.candidate ||
    x.row.candidate.id.startsWith(`${target.candidate}@`)).map((f) => {
    const checks = []
    if (target.minRpsRatio !== undefined) {
      checks.push(`requests/s ${ratio(f.rpsRatio)} (target ≥ ${target.minRpsRatio}x: ${f.rpsRatio >= target.minRpsRatio ? 'met' : 'MISSED'})`)
    }
    if (target.maxP99Ratio !== undefined) {
      checks.push(`p99 ${ratio(f.p99Ratio)} (target ≤ ${target.maxP99Ratio}x: ${f.p99Ratio <= target.maxP99Ratio ? 'met' : 'MISSED'})`)
    }
    if (target.maxP99Ms !== undefined) {
      const l = result.options.latencyConnections
      checks.push(`p99 at -c${l} ${ms(f.p99.median)} (target < ${target.maxP99Ms} ms: ${f.p99.median < target.maxP99Ms ? 'met' : 'MISSED'})`)
    }
    if (target.minReduction !== undefined) {
      const { factor } = target.minReduction
      const reduction = reductionOf(result, f.row, target.minReduction)
      checks.push(`${figureLabel(result, target.minReduction)} ${times(reduction)} fewer than the baseline's ` +
        `(target ≥ ${int.format(factor)}x: ${reduction >= factor ? 'met' : 'MISSED'})`)
    }
    if (target.maxP99MsOver !== undefined) {
      const l = result.options.latencyConnections
      const { plusMs } = target.maxP99MsOver
      const figure = observed(f.row, target.maxP99MsOver).median
      const bound = figure + plusMs
      checks.push(`p99 at -c${l} ${ms(f.p99.median)} (target ≤ ${plusMs} ms + ${figureLabel(result, target.maxP99MsOver)} ` +
        `${ms(figure)} = ${ms(bound)}: ${f.p99.median <= bound ? 'met' : 'MISSED'})`)
    }
    return `- ${target.label === undefined ? '' : `${target.label}: `}${f.row.candidate.label}: ${checks.join(', ')}`
  }))
}

/**
 * The whole report: title, table, targets, method and environment, sanity figures, per-round figures.
 * @param {ScenarioResult} result
 * @param {{ node: string, nginx: string, wrk: string, commit: string }} env
 * @param {{ perRound: boolean }} options
 */
export function formatReport (result, env, { perRound }) {
  const { scenario, options: o } = result
  const minutes = (result.finishedAt.getTime() - result.startedAt.getTime()) / 60_000
  const all = figures(result)
  const lines = [
    `### ${scenario.title}`,
    '',
    formatTable(result),
    ''
  ]
  const observedTable = formatFigures(result)
  if (observedTable !== '') lines.push(observedTable, '')
  const targets = checkTargets(result)
  if (targets.length > 0) lines.push('Targets (medians):', ...targets, '')
  lines.push(
    `Method: ${o.rounds} interleaved rounds (${result.rows.map((r) => r.candidate.id).join(', ')}); each candidate started fresh, ` +
    `warmed up ${o.warmupSec} s, then \`wrk -t1 -c${o.throughputConnections} -d${o.durationSec}s --latency\` (requests/s, CPU, the saturated p99) and ` +
    `\`wrk -t1 -c${o.latencyConnections} -d${o.durationSec}s --latency\` (p50, p99). Proxy on CPU 0; wrk and the origin on CPU 1. ` +
    'Ratios are of the medians; in parentheses, the range of the per-round ratios (each round against its own baseline). ' +
    `CPU µs/request: utime+stime of the proxy process (/proc/PID/stat, 10 ms ticks) over the -c${o.throughputConnections} run, divided by the requests wrk counted.`,
    `Environment: ${env.commit}, node ${env.node}, ${env.nginx}, ${env.wrk}; ${result.startedAt.toISOString()}, ${minutes.toFixed(1)} min.`,
    `Saturation (medians over the -c${o.throughputConnections} runs): ` +
      all.map((f) => `${f.row.candidate.id} proxy CPU ${Math.round(f.proxyCpuShare.median * 100)}% / load CPU ${Math.round(f.loadCpuShare.median * 100)}%`).join('; ') + '. ' +
      'Proxy CPU near 100% means the proxy is the bottleneck, as intended; load CPU near 100% means wrk and the origin are.',
    ...(scenario.notes ?? [])
  )
  const errors = result.rows.flatMap((row) => row.samples.filter((s) => s.errors > 0).map((s) => `${row.candidate.id} round ${s.round}: ${s.errorDetail}`))
  if (errors.length > 0) lines.push('', `Errors reported by wrk: ${errors.join('; ')}.`)
  const retried = result.rows.reduce((n, row) => n + row.samples.filter((s) => s.attempts > 1).length, 0)
  const tainted = result.rows.flatMap((row) => row.samples.filter((s) => s.foreignCpu > TAINT_CPU)
    .map((s) => `${row.candidate.id} round ${s.round} (${s.foreignCpu.toFixed(2)} CPU)`))
  lines.push('', `Other work on the machine: ${retried} measurement(s) were taken again because other processes took more than ` +
    `${TAINT_CPU} CPU meanwhile (up to ${o.retries} retries each, after waiting up to ${o.quietWaitSec} s for quiet; the cleanest attempt is kept).` +
    (tainted.length > 0 ? ` Still tainted: ${tainted.join(', ')}; rerun on a quieter machine if the figures matter.` : ' No kept measurement is tainted.'))
  if (perRound) {
    const observedColumns = scenario.figures ?? []
    lines.push('', '<details><summary>Per-round figures</summary>', '',
      '| round | candidate | requests/s | p50 | p99 | CPU µs/req | proxy CPU | load CPU | other work (CPUs) | attempts | errors |' +
        observedColumns.map((f) => ` ${figureLabel(result, f)} |`).join(''),
      `|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|${observedColumns.map(() => '---:|').join('')}`)
    for (let round = 1; round <= o.rounds; round++) {
      for (const row of result.rows) {
        const s = row.samples[round - 1]
        if (s === undefined) continue
        lines.push(`| ${round} | ${row.candidate.id} | ${int.format(s.rps)} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} | ${fixed(s.cpuUsPerRequest, 1)} ` +
          `| ${Math.round(s.proxyCpuShare * 100)}% | ${Math.round(s.loadCpuShare * 100)}% | ${fixed(s.foreignCpu, 2)} | ${s.attempts} | ${s.errors} |` +
          observedColumns.map((f) => ` ${fixed(s.figures[f.run][f.key] ?? NaN, f.digits ?? 2)} |`).join(''))
      }
    }
    lines.push('', '</details>')
  }
  return lines.join('\n')
}
