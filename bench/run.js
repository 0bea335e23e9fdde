// `npm run bench`: runs the scenarios' candidates in interleaved rounds and prints the markdown table; also writes bench/results/latest.md.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { bounded, log } from './lib/cli-args.js'
import { checkBuilt, ensureTools, environment } from './lib/prereqs.js'
import { installCleanup, stopAll } from './lib/processes.js'
import { formatReport } from './lib/report.js'
import { runScenario } from './lib/runner.js'
import { formatSoakTable, runSoak, verdict } from './lib/soak.js'
import { SCENARIOS } from './scenarios/index.js'
import { soak } from './scenarios/soak.js'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))

const USAGE = `Usage: npm run bench -- [options]

  --scenario IDS    comma-separated scenario ids, or all (default: all); --list shows them; \`soak\` is memory over
                    --requests per kind of answer, not a comparison (about 15 min at 2M)
  --requests N      soak: requests of each kind after its warm-up (default: 2000000, issue 14's count)
  --only IDS        run only these candidate ids (the baseline is kept for the ratios)
  --rounds N        interleaved rounds, at least 3 for a figure worth quoting (default: 3)
  --duration S      seconds of each measured wrk run (default: 10)
  --warmup S        seconds of load before each candidate's measured runs (default: 3)
  --retries N       measure a round again when other processes took CPU meanwhile, at most N times (default: 2)
  --quiet-wait S    before each measurement, wait at most S seconds for other processes to go quiet (default: 60)
  --gateway-dir D   the Breakwater checkout to measure (default: this one); it must be built
  --compare D       also run every Breakwater candidate from the built checkout D, as ID@NAME (NAME: D's folder name);
                    repeatable, e.g. a worktree of main against this branch, in the same interleaved rounds
  --out FILE        where the report goes too (default: bench/results/latest.md)
  --keep            keep the temp dir (configs and logs)
`

async function main () {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'all' },
      only: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      requests: { type: 'string', default: '2000000' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      retries: { type: 'string', default: '2' },
      'quiet-wait': { type: 'string', default: '60' },
      'gateway-dir': { type: 'string', default: join(BENCH_DIR, '..') },
      compare: { type: 'string', multiple: true, default: [] },
      out: { type: 'string', default: join(BENCH_DIR, 'results', 'latest.md') },
      keep: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(USAGE)
    return
  }
  if (values.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.id}: ${s.title}\n  candidates: ${s.candidates.map((c) => c.id).join(', ')}\n`)
    process.stdout.write(`${soak.id}: ${soak.title}\n  kinds: ${soak.kinds.map((k) => k.id).join(', ')}\n`)
    return
  }
  const options = {
    rounds: bounded(values.rounds, 'rounds', 1, 20),
    durationSec: bounded(values.duration, 'duration', 1, 120),
    warmupSec: bounded(values.warmup, 'warmup', 1, 60),
    throughputConnections: 64,
    latencyConnections: 8,
    retries: bounded(values.retries, 'retries', 0, 5),
    quietWaitSec: bounded(values['quiet-wait'], 'quiet-wait', 1, 600)
  }
  if (options.rounds < 3) log(`warning: ${options.rounds} round(s): BENCH.md asks for at least 3 before a figure is quoted`)
  const requests = bounded(values.requests, 'requests', 1000, 100_000_000)
  const ids = values.scenario === 'all' ? [...SCENARIOS.map((s) => s.id), soak.id] : values.scenario.split(',')
  const withSoak = ids.includes(soak.id)
  const scenarios = ids.filter((id) => id !== soak.id).map((id) => {
    const found = SCENARIOS.find((s) => s.id === id)
    if (found === undefined) throw new Error(`no scenario "${id}"; there are: ${[...SCENARIOS, soak].map((s) => s.id).join(', ')}`)
    return found
  })
  const only = values.only?.split(',')
  const gatewayDir = resolve(values['gateway-dir'])
  const compare = values.compare.map((dir) => ({ dir: resolve(dir), tag: basename(resolve(dir)) }))
  // Each compared checkout's candidates run right after their counterpart, in the same rounds.
  const withCompared = (/** @type {import('./lib/runner.js').Scenario} */ scenario) =>
    scenario.candidates.flatMap((c) => [c, ...compare.flatMap(({ dir, tag }) => c.fromCheckout?.(dir, tag) ?? [])])
  const known = scenarios.flatMap(withCompared).map((c) => c.id)
  const unknown = only?.filter((id) => !known.includes(id)) ?? []
  if (unknown.length > 0) throw new Error(`--only: no candidate ${unknown.join(', ')}; there are: ${known.join(', ')}`)

  installCleanup(log)
  const tools = ensureTools(log)
  checkBuilt(gatewayDir, log)
  for (const { dir } of compare) checkBuilt(dir, log)
  const env = environment(gatewayDir, tools)
  env.commit = `Breakwater from ${gatewayDir} (${env.commit})`
  for (const { dir, tag } of compare) env.commit += `, [${tag}] from ${dir} (${environment(dir, tools).commit})`
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-bench-'))
  // Removed at any exit, Ctrl-C included, unless --keep; kept when the run fails, for its logs.
  let removeDir = !values.keep
  process.once('exit', () => { if (removeDir) rmSync(dir, { recursive: true, force: true }) })
  const ctx = { dir, gatewayDir, tools, nodeArgs: [], log }
  const reports = []
  let finished = false
  try {
    for (const scenario of scenarios) {
      const candidates = withCompared(scenario).filter((c) => only === undefined || only.includes(c.id) || c.baseline === true)
      if (candidates.every((c) => c.baseline === true) && only !== undefined) {
        log(`${scenario.id}: none of --only ${only.join(',')} in it; skipped`)
        continue
      }
      const seconds = options.rounds * candidates.length * (options.warmupSec + 2 * options.durationSec + 1)
      log(`${scenario.id}: ${candidates.length} candidates x ${options.rounds} rounds, about ${Math.ceil(seconds / 60)} min`)
      const result = await runScenario(scenario, candidates, options, ctx)
      reports.push(formatReport(result, env, { perRound: true }))
      process.stdout.write(`\n${formatReport(result, env, { perRound: false })}\n`)
    }
    if (withSoak) {
      log(`${soak.id}: ${soak.kinds.length} kinds x ${requests} requests`)
      const rows = await runSoak(soak, { requests, warmupSec: options.warmupSec }, ctx)
      const failed = rows.filter((row) => verdict(row) !== 'pass').length
      const report = `## ${soak.title}\n\n${env.commit}; Node ${env.node}, nginx ${env.nginx}, ${env.wrk}.\n\n${formatSoakTable(rows)}\n\n` +
        `${failed === 0 ? 'Every kind within issue 14\'s target.' : `${failed} kind(s) outside issue 14's target.`}\n\n${soak.notes.join('\n\n')}\n`
      reports.push(report)
      process.stdout.write(`\n${report}`)
    }
    finished = true
  } finally {
    await stopAll()
    if (!finished) removeDir = false
    if (!removeDir) log(`configs and logs kept in ${dir}`)
  }
  mkdirSync(dirname(values.out), { recursive: true })
  writeFileSync(values.out, `# Breakwater bench\n\n${reports.join('\n\n')}\n`)
  log(`report written to ${values.out}`)
}

main().catch(async (err) => {
  log(`bench failed: ${err instanceof Error ? err.message : err}`)
  await stopAll()
  process.exit(1)
})
