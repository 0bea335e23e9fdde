// The shared runner: a scenario's candidates in interleaved rounds (A B C, A B C ...), each warmed up, then measured by wrk for throughput, latency and CPU per request.
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { CPU_TICK_SECONDS, cpuTimes, processCpuSeconds } from './cpu.js'
import { probe } from './net.js'
import { LOAD_CPU, PROXY_CPU } from './processes.js'
import { runWrk } from './wrk.js'

/**
 * @typedef {import('./candidates.js').Candidate} Candidate
 * @typedef {import('./candidates.js').RunContext} RunContext
 */

/**
 * @typedef {object} Scenario
 * @property {string} id
 * @property {string} title
 * @property {string} path  the request path wrk loads
 * @property {Expect} expect  what a probe through each candidate must get before it is measured (a candidate's own `expect` wins)
 * @property {(ctx: RunContext) => Promise<{ services: Record<string, any>, stop: () => Promise<void> }>} setup  starts the origin and any other shared service
 * @property {Candidate[]} candidates  in the order each round runs them
 * @property {string} [script]  a wrk Lua script, for varied paths or bodies
 * @property {import('./net.js').RequestSpec} [request]  the one request of the scenario when it is not a bare GET (a POST
 *   of one JSON item): sent by the probe and by wrk alike
 * @property {number} [throughputConnections]  wrk's connections in the requests/s run, when the scenario needs other than
 *   the run's (sync write coalescing: a batch holds at most as many items as there are writers waiting)
 * @property {number} [timeoutSec]  wrk's --timeout, when 2 s is too short for an answer that is slow but not failed (a
 *   deep queue of writes in front of a saturated upstream)
 * @property {Observer} [observe]  figures read from the scenario's services around each measured run
 * @property {Figure[]} [figures]  which of those the report shows, in a table of their own
 * @property {boolean} [allowNon2xx]  non-2xx answers are the point (breaker open): do not count them as errors (a candidate's own wins)
 * @property {Target[]} [targets]  the issue's acceptance figures, checked in the report
 * @property {string[]} [notes]  printed under the table
 */

/**
 * @typedef {object} Expect
 * @property {number} status
 * @property {number} [bodyBytes]
 * @property {string} [contentType]  the answer's Content-Type must start with this
 * @property {string[]} [headers]  header names the answer must carry, e.g. retry-after
 */

/**
 * @typedef {object} Target
 * @property {string} candidate  a candidate id
 * @property {string} [label]  whose target it is, e.g. "issue 3", shown in the report
 * @property {number} [minRpsRatio]  requests/s at least this times the baseline's
 * @property {number} [maxP99Ratio]  p99 at most this times the baseline's
 * @property {number} [maxP99Ms]  p99 at the latency run's connections at most this many ms (an absolute bound)
 * @property {{ run: RunKind, key: string, factor: number }} [minReduction]  an observed figure (upstream requests per
 *   write) at least `factor` times smaller than the baseline's
 * @property {{ run: RunKind, key: string, plusMs: number }} [maxP99MsOver]  p99 at the latency run's connections at most
 *   an observed figure (the upstream's bulk latency) plus `plusMs` (the gateway's maxWait and an allowance)
 */

/**
 * @typedef {'throughput' | 'latency'} RunKind  the requests/s run or the latency run
 */

/**
 * @typedef {object} Observer
 * @property {(services: Record<string, any>) => Promise<unknown>} before  a snapshot taken before the run
 * @property {(services: Record<string, any>, before: any, run: import('./wrk.js').WrkResult) => Promise<Record<string, number>>} after
 *   the run's figures, from the snapshot before it and wrk's result (e.g. upstream requests per request wrk counted)
 */

/**
 * @typedef {object} Figure  a column of the observed figures' table
 * @property {RunKind} run
 * @property {string} key  as the observer returns it
 * @property {string} label  the column's heading; the report adds the run's connections
 * @property {number} [digits]  after the decimal point; 2 unless given
 * @property {boolean} [reduction]  also a column with the baseline's median over the candidate's: how many times fewer
 */

/**
 * @typedef {object} RunOptions
 * @property {number} rounds
 * @property {number} durationSec  of each measured wrk run
 * @property {number} warmupSec  load before the measured runs, not recorded
 * @property {number} throughputConnections
 * @property {number} latencyConnections
 * @property {number} retries  how many times a round tainted by other work is measured again (the cleanest is kept)
 * @property {number} quietWaitSec  at most this long, before each measurement, waiting for other work to stop
 */

/**
 * @typedef {object} Sample
 * @property {number} round
 * @property {number} rps  at throughputConnections
 * @property {number} requests  completed in the throughput run
 * @property {number} cpuUsPerRequest  the candidate process's utime+stime over the throughput run, per request
 * @property {number} proxyCpuShare  that CPU time over the run's wall time: near 1, the proxy is the bottleneck
 * @property {number} loadCpuShare  how busy the load CPU (wrk + origin) was in the throughput run
 * @property {number} foreignCpu  CPUs' worth of time other processes took during the measured runs (worst of the two)
 * @property {number} attempts  how many measurements were taken: 1, or more when they were tainted by other work
 * @property {number} p50Ms  at latencyConnections
 * @property {number} p99Ms
 * @property {number} p99ThroughputMs  p99 of the throughput run (throughputConnections): the tail under saturation
 * @property {number} errors  socket errors, non-2xx answers unless they are allowed, and 2xx ones when an error status is expected, in both runs
 * @property {string} errorDetail
 * @property {Record<RunKind, Record<string, number>>} figures  the scenario's observed figures of each run; empty without an observer
 */

/**
 * @typedef {object} ScenarioResult
 * @property {Scenario} scenario
 * @property {RunOptions} options
 * @property {{ candidate: Candidate, samples: Sample[] }[]} rows
 * @property {Date} startedAt
 * @property {Date} finishedAt
 */

/**
 * Above this many CPUs' worth of other processes' time during a measurement, the measurement is tainted: on a shared
 * two-CPU machine a test suite next door halves a proxy's throughput and multiplies its p99.
 */
export const TAINT_CPU = 0.05

/** The CPUs whose time is accounted: the proxy's and the load's. */
const CPUS = [PROXY_CPU, LOAD_CPU]

/**
 * Runs every candidate of `scenario` once per round, the rounds interleaved so that drift on a shared machine falls
 * on all candidates alike. Each candidate starts fresh in each round and is stopped before the next one starts.
 * @param {Scenario} scenario
 * @param {Candidate[]} candidates  the scenario's, possibly filtered
 * @param {RunOptions} runOptions  the scenario's `throughputConnections` wins
 * @param {RunContext} ctx
 * @returns {Promise<ScenarioResult>}
 */
export async function runScenario (scenario, candidates, runOptions, ctx) {
  const startedAt = new Date()
  const options = { ...runOptions, throughputConnections: scenario.throughputConnections ?? runOptions.throughputConnections }
  const rows = candidates.map((candidate) => ({ candidate, samples: /** @type {Sample[]} */ ([]) }))
  const { services, stop } = await scenario.setup(ctx)
  try {
    for (let round = 1; round <= options.rounds; round++) {
      for (const row of rows) {
        const sample = await measureClean(scenario, row.candidate, round, options, ctx, services)
        row.samples.push(sample)
        ctx.log(`  round ${round}/${options.rounds} ${row.candidate.id}: ${Math.round(sample.rps)} req/s, ` +
          `${sample.cpuUsPerRequest.toFixed(1)} µs CPU/req (proxy CPU ${Math.round(sample.proxyCpuShare * 100)}%, ` +
          `load CPU ${Math.round(sample.loadCpuShare * 100)}%, other work ${sample.foreignCpu.toFixed(2)} CPU), ` +
          `-c${options.latencyConnections} p50 ${sample.p50Ms.toFixed(2)} ms p99 ${sample.p99Ms.toFixed(2)} ms` +
          `${observedFigures(scenario, sample, options)}` +
          `${sample.attempts > 1 ? ` [attempt ${sample.attempts}]` : ''}${sample.errors > 0 ? `, ERRORS ${sample.errorDetail}` : ''}`)
      }
    }
  } finally {
    await stop()
  }
  return { scenario, options, rows, startedAt, finishedAt: new Date() }
}

/**
 * The scenario's observed figures of one sample, for the progress line: `, upstream requests per write -c1024 0.0010`.
 * @param {Scenario} scenario
 * @param {Sample} sample
 * @param {RunOptions} options
 */
function observedFigures (scenario, sample, options) {
  // A figure the candidate does not have (no bulk request through a plain proxy) is left out.
  return (scenario.figures ?? []).filter((f) => Number.isFinite(sample.figures[f.run][f.key])).map((f) => {
    const connections = f.run === 'throughput' ? options.throughputConnections : options.latencyConnections
    return `, ${f.label} -c${connections} ${(sample.figures[f.run][f.key] ?? NaN).toFixed(f.digits ?? 2)}`
  }).join('')
}

/**
 * Measures until a measurement is not tainted by other work, at most 1 + retries times; keeps the cleanest.
 * @param {Scenario} scenario
 * @param {Candidate} candidate
 * @param {number} round
 * @param {RunOptions} options
 * @param {RunContext} ctx
 * @param {Record<string, any>} services
 * @returns {Promise<Sample>}
 */
async function measureClean (scenario, candidate, round, options, ctx, services) {
  /** @type {Sample | undefined} */
  let best
  let attempt = 1
  for (; attempt <= 1 + options.retries; attempt++) {
    const waited = await waitForQuiet(options.quietWaitSec)
    if (!waited.quiet) ctx.log(`  (other work still took ${waited.foreignCpu.toFixed(2)} CPU after ${options.quietWaitSec} s of waiting)`)
    const sample = await measure(scenario, candidate, round, options, ctx, services)
    if (best === undefined || sample.foreignCpu < best.foreignCpu) best = sample
    if (sample.foreignCpu <= TAINT_CPU) break
    if (attempt <= options.retries) {
      ctx.log(`  round ${round} ${candidate.id}: other work took ${sample.foreignCpu.toFixed(2)} CPU during the measurement; measuring again`)
    }
  }
  const kept = /** @type {Sample} */ (best)
  return { ...kept, attempts: Math.min(attempt, 1 + options.retries) }
}

/**
 * Waits, one second at a time and at most `maxSec`, until processes took less than TAINT_CPU of the two CPUs in a
 * second. Nothing of the bench's runs then but an idle origin.
 * @param {number} maxSec
 * @returns {Promise<{ quiet: boolean, foreignCpu: number }>}
 */
export async function waitForQuiet (maxSec) {
  let foreignCpu = NaN
  for (let i = 0; i < maxSec; i++) {
    const before = busySeconds()
    const self = process.cpuUsage()
    const wallBefore = performance.now()
    await sleep(1_000)
    const ownSeconds = secondsOf(process.cpuUsage(self))
    foreignCpu = Math.max(0, busySeconds() - before - ownSeconds) / ((performance.now() - wallBefore) / 1000)
    if (foreignCpu <= TAINT_CPU) return { quiet: true, foreignCpu }
  }
  return { quiet: false, foreignCpu }
}

/**
 * Busy time of the accounted CPUs since boot, in seconds. Busy, not task time: a process's stime includes the
 * softirq ticks it ran (loopback TCP does its receive work there), which /proc/stat books as softirq.
 */
function busySeconds () {
  return CPUS.reduce((sum, cpu) => sum + cpuTimes(cpu).busy, 0)
}

/** process.cpuUsage()'s microseconds, in seconds. */
function secondsOf (/** @type {NodeJS.CpuUsage} */ usage) {
  return (usage.user + usage.system) / 1e6
}

/**
 * Runs one wrk measurement and accounts the CPUs' time meanwhile: the proxy's (or origin's) process, the scenario's
 * services (the origin's worker, a redis-server), wrk, this process, and the rest, which is other work on the machine.
 * @param {Parameters<typeof runWrk>[0]} wrkOptions
 * @param {number} cpuPid
 * @param {readonly number[]} servicePids
 */
export async function accounted (wrkOptions, cpuPid, servicePids) {
  const servicesCpu = () => servicePids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0)
  const proxyBefore = processCpuSeconds(cpuPid)
  const servicesBefore = servicesCpu()
  const proxyCpuBefore = cpuTimes(PROXY_CPU)
  const loadBefore = cpuTimes(LOAD_CPU)
  const self = process.cpuUsage()
  const wallBefore = performance.now()
  const run = await runWrk(wrkOptions)
  const wallSeconds = (performance.now() - wallBefore) / 1000
  const ownSeconds = secondsOf(process.cpuUsage(self))
  const proxySeconds = processCpuSeconds(cpuPid) - proxyBefore
  const servicesSeconds = servicesCpu() - servicesBefore
  const loadAfter = cpuTimes(LOAD_CPU)
  const proxyCpuAfter = cpuTimes(PROXY_CPU)
  const busyDelta = proxyCpuAfter.busy - proxyCpuBefore.busy + loadAfter.busy - loadBefore.busy
  // Ticks are 10 ms: a few of them either way are rounding, not other work.
  const foreignSeconds = Math.max(0, busyDelta - proxySeconds - servicesSeconds - run.cpuSeconds - ownSeconds - 4 * CPU_TICK_SECONDS)
  return {
    run,
    proxySeconds,
    wallSeconds,
    loadCpuShare: (loadAfter.busy - loadBefore.busy) / (loadAfter.total - loadBefore.total),
    foreignCpu: foreignSeconds / wallSeconds
  }
}

/**
 * The processes of a scenario's services (the origin's worker, a redis-server, all of a service's `pids` when it lists
 * them), accounted apart from other work; without the candidate's own (wrk straight at the origin).
 * @param {Record<string, any>} services
 * @param {number} cpuPid
 * @returns {number[]}
 */
export function pidsOf (services, cpuPid) {
  return Object.values(services)
    .flatMap((service) => service?.pids ?? [service?.workerPid ?? service?.pid])
    .filter((pid) => typeof pid === 'number' && pid !== cpuPid)
}

/**
 * One candidate, one round: start, probe, warm up, throughput run with CPU sampling, latency run, stop.
 * @param {Scenario} scenario
 * @param {Candidate} candidate
 * @param {number} round
 * @param {RunOptions} options
 * @param {RunContext} ctx
 * @param {Record<string, any>} services
 * @returns {Promise<Sample>}
 */
async function measure (scenario, candidate, round, options, ctx, services) {
  const instance = await candidate.start(ctx, services)
  try {
    const url = instance.url + scenario.path
    const expect = candidate.expect ?? scenario.expect
    await expectAnswer(url, expect, candidate, scenario.request)
    const wrk = { url, dir: ctx.dir, script: scenario.script, request: scenario.request, timeoutSec: scenario.timeoutSec }
    await runWrk({ ...wrk, connections: options.throughputConnections, durationSec: options.warmupSec })

    const servicePids = pidsOf(services, instance.cpuPid)
    /** @type {Record<RunKind, Record<string, number>>} */
    const figures = { throughput: {}, latency: {} }
    const observed = async (/** @type {RunKind} */ kind, /** @type {number} */ connections) => {
      const before = await scenario.observe?.before(services)
      const result = await accounted({ ...wrk, connections, durationSec: options.durationSec }, instance.cpuPid, servicePids)
      if (scenario.observe !== undefined) figures[kind] = await scenario.observe.after(services, before, result.run)
      return result
    }
    const throughput = await observed('throughput', options.throughputConnections)
    const latency = await observed('latency', options.latencyConnections)
    if (instance.proc !== null && !instance.proc.alive()) {
      throw new Error(`${candidate.id} exited during the run:\n${instance.proc.logTail()}`)
    }
    const allowNon2xx = candidate.allowNon2xx ?? scenario.allowNon2xx ?? false
    // wrk counts answers of 400 and up as non-2xx: when such an answer is the expected one, the others are the errors.
    const expectsError = expect.status >= 400
    const errorsByKind = (/** @type {import('./wrk.js').WrkResult} */ run) => {
      const { non2xx, ...sockets } = run.errors
      return { ...sockets, non2xx: allowNon2xx ? 0 : non2xx, ...(expectsError ? { unexpected2xx: Math.max(0, run.requests - non2xx) } : {}) }
    }
    const errorsOf = (/** @type {import('./wrk.js').WrkResult} */ run) => Object.values(errorsByKind(run)).reduce((sum, n) => sum + n, 0)
    const detail = (/** @type {string} */ name, /** @type {import('./wrk.js').WrkResult} */ run) =>
      Object.entries(errorsByKind(run)).filter(([, n]) => n > 0).map(([kind, n]) => `${name} ${kind} ${n}`)
    return {
      round,
      rps: throughput.run.rps,
      requests: throughput.run.requests,
      cpuUsPerRequest: throughput.proxySeconds * 1e6 / throughput.run.requests,
      proxyCpuShare: throughput.proxySeconds / throughput.wallSeconds,
      loadCpuShare: throughput.loadCpuShare,
      foreignCpu: Math.max(throughput.foreignCpu, latency.foreignCpu),
      attempts: 1,
      p50Ms: latency.run.latencyMs.p50,
      p99Ms: latency.run.latencyMs.p99,
      p99ThroughputMs: throughput.run.latencyMs.p99,
      errors: errorsOf(throughput.run) + errorsOf(latency.run),
      errorDetail: [...detail(`-c${options.throughputConnections}`, throughput.run), ...detail(`-c${options.latencyConnections}`, latency.run)].join(', '),
      figures
    }
  } finally {
    await instance.stop()
  }
}

/**
 * A candidate that answers wrongly would be measured doing something else: one request first.
 * @param {string} url
 * @param {Expect} expect
 * @param {Candidate} candidate
 * @param {import('./net.js').RequestSpec} [request]  the scenario's request, when it is not a bare GET
 */
async function expectAnswer (url, expect, candidate, request) {
  const answer = await probe(url, request)
  const contentType = String(answer.headers['content-type'] ?? '')
  const missing = (expect.headers ?? []).filter((name) => answer.headers[name.toLowerCase()] === undefined)
  if (answer.status !== expect.status || (expect.bodyBytes !== undefined && answer.bytes !== expect.bodyBytes) ||
    (expect.contentType !== undefined && !contentType.startsWith(expect.contentType)) || missing.length > 0) {
    const wanted = [
      String(expect.status),
      ...(expect.bodyBytes === undefined ? [] : [`${expect.bodyBytes} bytes`]),
      ...(expect.contentType === undefined ? [] : [`Content-Type ${expect.contentType}`]),
      ...(expect.headers ?? []).map((name) => `a ${name} header`)
    ]
    throw new Error(`${candidate.id}: ${request?.method ?? 'GET'} ${url} answered ${answer.status} with ${answer.bytes} bytes, Content-Type "${contentType}"` +
      `${missing.length > 0 ? `, without ${missing.join(', ')}` : ''}; it is expected to answer ${wanted.join(', ')}`)
  }
}
