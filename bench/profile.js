// `node bench/profile.js`: one pass-through candidate under `node --cpu-prof` with wrk load, and a summary of where its CPU time goes.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { analyze } from './lib/cpuprofile.js'
import { checkBuilt, ensureTools } from './lib/prereqs.js'
import { installCleanup, stopAll } from './lib/processes.js'
import { accounted, pidsOf, TAINT_CPU, waitForQuiet } from './lib/runner.js'
import { runWrk } from './lib/wrk.js'
import { SCENARIOS } from './scenarios/index.js'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
/** The candidates of a scenario that run a proxy of ours to profile (not nginx serving directly). */
const profilable = (/** @type {import('./lib/runner.js').Scenario} */ scenario) => scenario.candidates.filter((c) => c.id !== 'nginx-direct')

const USAGE = `Usage: node bench/profile.js [options]

  --scenario ID     ${SCENARIOS.map((s) => s.id).join(', ')} (default: passthrough)
  --candidate ID    a candidate of the scenario (default: breakwater); ${SCENARIOS.map((s) => `${s.id}: ${profilable(s).map((c) => c.id).join(', ')}`).join('; ')}
  --duration S      seconds of profiled load (default: 10)
  --warmup S        seconds of load first, left out of the summary (default: 3)
  --connections N   wrk connections (default: 64)
  --interval US     sampling interval in µs (default: 250)
  --top N           rows in the function tables (default: 25)
  --gateway-dir D   the Breakwater checkout to profile (default: this one); it must be built
  --out-dir D       where the .cpuprofile, its load window and the summary go (default: bench/results)
  --quiet-wait S    first wait at most S seconds for other processes to go quiet (default: 60)
  --analyze FILE    only summarize a .cpuprofile written before (its .window.json beside it, if any, gives the window)
`

const log = (/** @type {string} */ message) => { process.stderr.write(`${message}\n`) }
const pct = (/** @type {number} */ part, /** @type {number} */ whole) => `${(100 * part / whole).toFixed(1)}%`

/**
 * @typedef {object} LoadWindow  what the profile was taken under, saved beside it
 * @property {string} label
 * @property {number} fromUs  start of the measured load, on the profile's clock
 * @property {number} toUs
 * @property {number} rps
 * @property {number} connections
 * @property {number} foreignCpu  CPUs' worth of other processes' time during the window: a busy neighbour skews the profile
 */

/**
 * Runs the candidate under the profiler and saves the profile and its load window in `outDir`.
 * @param {import('./lib/runner.js').Scenario} scenario
 * @param {import('./lib/candidates.js').Candidate} candidate
 * @param {{ gatewayDir: string, outDir: string, durationSec: number, warmupSec: number, connections: number, intervalUs: number, quietWaitSec: number }} options
 * @returns {Promise<string>} the saved profile's path
 */
async function profileCandidate (scenario, candidate, { gatewayDir, outDir, durationSec, warmupSec, connections, intervalUs, quietWaitSec }) {
  installCleanup(log)
  const tools = ensureTools(log)
  checkBuilt(gatewayDir, log)
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-profile-'))
  process.once('exit', () => { rmSync(dir, { recursive: true, force: true }) })
  const profileDir = join(dir, 'cpuprofile')
  const nodeArgs = ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-interval', String(intervalUs)]
  const ctx = { dir, gatewayDir, tools, nodeArgs, log }

  /** @type {LoadWindow} */
  let window = { label: candidate.label, fromUs: 0, toUs: 0, rps: NaN, connections, foreignCpu: NaN }
  const { services, stop } = await scenario.setup(ctx)
  try {
    const instance = await candidate.start(ctx, services)
    try {
      const url = instance.url + scenario.path
      const quiet = await waitForQuiet(quietWaitSec)
      if (!quiet.quiet) log(`other work still took ${quiet.foreignCpu.toFixed(2)} CPU after ${quietWaitSec} s of waiting`)
      // A scenario's own request (a POST of one item, say) is what its candidates are measured under.
      const { request, timeoutSec } = scenario
      if (warmupSec > 0) await runWrk({ url, dir, connections, durationSec: warmupSec, request, timeoutSec })
      // V8's profiler stamps samples with the monotonic clock that hrtime reads, in µs.
      const fromUs = Number(process.hrtime.bigint() / 1000n)
      const { run, foreignCpu } = await accounted({ url, dir, connections, durationSec, request, timeoutSec }, instance.cpuPid, pidsOf(services, instance.cpuPid))
      window = { ...window, fromUs, toUs: Number(process.hrtime.bigint() / 1000n), rps: run.rps, foreignCpu }
      log(`${candidate.id}: ${Math.round(run.rps)} req/s under the profiler; other work took ${foreignCpu.toFixed(2)} CPU meanwhile`)
    } finally {
      // SIGTERM lets the process exit on its own, which is when node writes the profile.
      await instance.stop()
    }
  } finally {
    await stop()
  }
  const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error(`no .cpuprofile in ${profileDir}: did ${candidate.id} exit on SIGTERM?`)
  mkdirSync(outDir, { recursive: true })
  const saved = join(outDir, `profile-${scenario.id}-${candidate.id}.cpuprofile`)
  copyFileSync(join(profileDir, file), saved)
  writeFileSync(saved.replace(/\.cpuprofile$/, '.window.json'), JSON.stringify(window, null, 2))
  return saved
}

/**
 * The markdown summary of a saved profile.
 * @param {string} file
 * @param {number} top
 */
function summarizeProfile (file, top) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const windowFile = file.replace(/\.cpuprofile$/, '.window.json')
  /** @type {LoadWindow | null} */
  const window = existsSync(windowFile) ? JSON.parse(readFileSync(windowFile, 'utf8')) : null
  const inside = window !== null && window.fromUs >= profile.startTime && window.fromUs < profile.endTime
  if (window !== null && !inside) log('warning: the load window does not fall inside the profile\'s time range; summarizing the whole profile')
  const a = analyze(profile, inside && window !== null ? { fromUs: window.fromUs, toUs: window.toUs } : {})
  const busy = a.windowUs - a.idleUs
  const load = window === null
    ? 'the whole profile'
    : `${(a.windowUs / 1e6).toFixed(1)} s of load (\`wrk -t1 -c${window.connections}\`, ${Math.round(window.rps)} req/s under the profiler, ` +
      `other processes ${window.foreignCpu?.toFixed(2) ?? '?'} CPU${window.foreignCpu > TAINT_CPU ? ': TAINTED, the figures are skewed' : ''})`
  const own = (/** @type {string} */ area) => area.startsWith('Breakwater') || area.startsWith('bench')
  // Per request, so that two profiles taken at different rates compare (the profiler's own overhead included).
  const requests = window === null ? NaN : window.rps * a.windowUs / 1e6
  const perRequest = (/** @type {number} */ us) => Number.isFinite(requests) ? (us / requests).toFixed(1) : '—'
  return [
    `### CPU profile: ${window?.label ?? file}`,
    '',
    `${load}, ${a.samples} samples, busy ${pct(busy, a.windowUs)} of the window, ${perRequest(busy)} µs of CPU per request under the profiler. ` +
    `Percentages are of busy time. Profile: ${file} (opens in Chrome DevTools).`,
    '',
    '| area | self | self, native frames charged to their JS caller | by caller: native and node-internal frames charged to the nearest library or app frame above | by caller, µs/request |',
    '|---|---:|---:|---:|---:|',
    ...a.areas.filter((x) => x.area !== 'idle' && (x.us > 0 || x.chargedUs > 0 || x.byCallerUs > 0))
      .map((x) => `| ${x.area} | ${pct(x.us, busy)} | ${pct(x.chargedUs, busy)} | ${pct(x.byCallerUs, busy)} | ${perRequest(x.byCallerUs)} |`),
    '',
    `Top ${top} functions by self time:`,
    '',
    '| self | function | area |',
    '|---:|---|---|',
    ...a.self.filter((x) => x.area !== 'idle').slice(0, top).map((x) => `| ${pct(x.us, busy)} | \`${x.name}\` | ${x.area} |`),
    '',
    `Top ${top} JS functions by inclusive time (self plus callees):`,
    '',
    '| inclusive | function | area |',
    '|---:|---|---|',
    ...a.inclusive.filter((x) => !x.name.startsWith('(')).slice(0, top).map((x) => `| ${pct(x.us, busy)} | \`${x.name}\` | ${x.area} |`),
    '',
    'Inclusive time of the proxy\'s own functions (Breakwater src/ or the bench baseline), at least 0.3%:',
    '',
    '| inclusive | function |',
    '|---:|---|',
    ...a.inclusive.filter((x) => own(x.area) && x.us / busy >= 0.003).map((x) => `| ${pct(x.us, busy)} | \`${x.name}\` |`)
  ].join('\n')
}

async function main () {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'passthrough' },
      candidate: { type: 'string', default: 'breakwater' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      connections: { type: 'string', default: '64' },
      interval: { type: 'string', default: '250' },
      top: { type: 'string', default: '25' },
      'gateway-dir': { type: 'string', default: join(BENCH_DIR, '..') },
      'out-dir': { type: 'string', default: join(BENCH_DIR, 'results') },
      'quiet-wait': { type: 'string', default: '60' },
      analyze: { type: 'string' },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(USAGE)
    return
  }
  const top = Math.min(200, Math.max(5, Number(values.top) || 25))
  let file = values.analyze
  if (file === undefined) {
    const scenario = SCENARIOS.find((s) => s.id === values.scenario)
    if (scenario === undefined) throw new Error(`no scenario "${values.scenario}"\n\n${USAGE}`)
    const candidate = profilable(scenario).find((c) => c.id === values.candidate)
    if (candidate === undefined) throw new Error(`no profilable candidate "${values.candidate}" in ${scenario.id}\n\n${USAGE}`)
    file = await profileCandidate(scenario, candidate, {
      gatewayDir: resolve(values['gateway-dir']),
      outDir: resolve(values['out-dir']),
      durationSec: Math.min(120, Math.max(1, Number(values.duration) || 10)),
      warmupSec: Math.min(60, Math.max(0, Number(values.warmup) || 0)),
      connections: Math.min(1024, Math.max(1, Number(values.connections) || 64)),
      intervalUs: Math.min(10_000, Math.max(50, Number(values.interval) || 250)),
      quietWaitSec: Math.min(600, Math.max(1, Number(values['quiet-wait']) || 60))
    })
  }
  const summary = summarizeProfile(resolve(file), top)
  const out = resolve(file).replace(/\.cpuprofile$/, '.md')
  writeFileSync(out, `${summary}\n`)
  process.stdout.write(`${summary}\n`)
  log(`summary written to ${out}`)
}

main().catch(async (err) => {
  log(`profile failed: ${err instanceof Error ? err.message : err}`)
  await stopAll()
  process.exit(1)
})
