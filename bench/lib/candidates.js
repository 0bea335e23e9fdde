// The proxies a scenario can compare: the bare Fastify baseline, Breakwater with a generated config, and the origin itself.
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, waitForHttp } from './net.js'
import { PROXY_CPU, spawnPinned } from './processes.js'

const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * @typedef {object} RunContext
 * @property {string} dir  the run's temp dir: configs and logs
 * @property {string} gatewayDir  the Breakwater checkout under test (its bin/ and dist/)
 * @property {{ nginx: string, wrk: string, redisServer: string }} tools
 * @property {readonly string[]} nodeArgs  extra node flags for Node candidates (profile.js adds --cpu-prof)
 * @property {(message: string) => void} log
 */

/**
 * @typedef {object} Instance
 * @property {string} url  where wrk sends its load, without the scenario's path
 * @property {number} cpuPid  the process whose CPU time is charged to the candidate
 * @property {import('./processes.js').Managed | null} proc  null when the candidate is a shared service
 * @property {() => Promise<void>} stop
 */

/**
 * @typedef {object} Candidate
 * @property {string} id  short, for --only and file names
 * @property {string} label  the table's row name
 * @property {boolean} [baseline]  the row the ratios divide by; one per scenario
 * @property {string} [note]  shown after the CPU figure, e.g. "(origin)"
 * @property {import('./runner.js').Expect} [expect]  this candidate's expected answer, when it differs from the scenario's
 *   (Breakwater's 503 with its breaker open, where the baseline answers 200)
 * @property {boolean} [allowNon2xx]  the same for the scenario's `allowNon2xx`
 * @property {(ctx: RunContext, services: Record<string, any>) => Promise<Instance>} start
 * @property {(gatewayDir: string, tag: string) => Candidate} [fromCheckout]  the same candidate run from another
 *   Breakwater checkout (`--compare DIR`), for Breakwater candidates
 */

/**
 * Starts a Node proxy pinned to the proxy CPU, stdout to /dev/null, and waits until `readyPath` answers 200.
 * @param {RunContext} ctx
 * @param {string} name
 * @param {string[]} args  node arguments after ctx.nodeArgs
 * @param {number} port
 * @param {string} readyPath
 * @param {number} [readyStatus]  what `readyPath` answers once the proxy is up
 * @returns {Promise<Instance>}
 */
async function startNodeProxy (ctx, name, args, port, readyPath, readyStatus = 200) {
  const proc = spawnPinned(name, PROXY_CPU, process.execPath, [...ctx.nodeArgs, ...args], {
    logFile: join(ctx.dir, `${name}.stderr.log`),
    stdout: 'null',
    cwd: ctx.gatewayDir
  })
  const url = `http://127.0.0.1:${port}`
  try {
    await waitForHttp(url + readyPath, { proc, status: readyStatus })
  } catch (err) {
    await proc.stop()
    throw err
  }
  // The gateway drains for up to its shutdownTimeout on SIGTERM; nothing is in flight by now.
  return { url, cpuPid: proc.pid, proc, stop: () => proc.stop({ graceMs: 15_000 }) }
}

/**
 * bench/baseline-proxy.js in front of `services.origin`.
 * @returns {Candidate}
 */
export function bareFastifyProxy () {
  return {
    id: 'baseline',
    label: 'bare Fastify 5 + @fastify/http-proxy 11 (baseline)',
    baseline: true,
    async start (ctx, services) {
      const port = await freePort()
      const args = [join(BENCH_DIR, 'baseline-proxy.js'), '--upstream', services.origin.url, '--port', String(port)]
      return startNodeProxy(ctx, 'baseline', args, port, '/')
    }
  }
}

/**
 * bench/node-floor.js: a bare node:http server with nothing else to do than one fixed answer: the open breaker's 503
 * (`problem`), or a 1 KiB cache hit held in memory (`cached`).
 * @param {'problem' | 'cached'} [answer]
 * @returns {Candidate}
 */
export function nodeFloor (answer = 'problem') {
  const problem = answer === 'problem'
  return {
    id: 'node-floor',
    label: problem
      ? 'bare node:http answering a fixed 503 (floor of any Node fast-fail)'
      : 'bare node:http answering a 1 KiB hit from memory (floor of any Node cache hit)',
    ...(problem
      ? { expect: { status: 503, contentType: 'application/problem+json', headers: ['retry-after'] }, allowNon2xx: true }
      : { expect: { status: 200, bodyBytes: 1024, headers: ['x-cache', 'age'] } }),
    async start (ctx) {
      const port = await freePort()
      const args = [join(BENCH_DIR, 'node-floor.js'), '--port', String(port), '--answer', answer]
      return startNodeProxy(ctx, 'node-floor', args, port, '/', problem ? 503 : 200)
    }
  }
}

/**
 * Breakwater from `ctx.gatewayDir`, or from `gatewayDir` when given (`node bin/breakwater.js start --config FILE`),
 * with one route `prefix: /` to `services.origin` unless `routes` is given. Server keys left out keep the gateway's
 * defaults.
 * @param {object} options
 * @param {string} options.id
 * @param {string} options.label
 * @param {Record<string, string | number | boolean>} [options.server]  extra `server:` keys, e.g. { accessLog: false }
 * @param {(services: Record<string, any>) => string} [options.routes]  the YAML of the `routes:` list
 * @param {string | ((services: Record<string, any>) => string)} [options.extraYaml]  more top-level config, e.g. a
 *   `management:` block, or a function of the services (a `redis:` block naming the scenario's redis-server)
 * @param {string} [options.readyPath]
 * @param {(url: string, ctx: RunContext) => Promise<void>} [options.afterStart]  run once the gateway is ready, before
 *   the probe and the warm-up: e.g. force a breaker open
 * @param {import('./runner.js').Expect} [options.expect]
 * @param {boolean} [options.allowNon2xx]
 * @param {string} [options.gatewayDir]
 * @returns {Candidate}
 */
export function breakwater (options) {
  const { id, label, server = {}, routes, extraYaml = '', readyPath = '/', afterStart, expect, allowNon2xx, gatewayDir } = options
  return {
    id,
    label,
    ...(expect === undefined ? {} : { expect }),
    ...(allowNon2xx === undefined ? {} : { allowNon2xx }),
    async start (ctx, services) {
      const port = await freePort()
      const serverYaml = Object.entries({ host: '127.0.0.1', port, ...server }).map(([key, value]) => `  ${key}: ${value}`).join('\n')
      const routesYaml = routes?.(services) ?? `  - id: origin\n    prefix: /\n    upstream: ${services.origin.url}\n`
      const configFile = join(ctx.dir, `${id}.yaml`)
      const extra = typeof extraYaml === 'function' ? extraYaml(services) : extraYaml
      writeFileSync(configFile, `# Written by bench/lib/candidates.js for one bench run.\nserver:\n${serverYaml}\n${extra}routes:\n${routesYaml}`)
      const dir = gatewayDir ?? ctx.gatewayDir
      const args = [join(dir, 'bin', 'breakwater.js'), 'start', '--config', configFile]
      const instance = await startNodeProxy({ ...ctx, gatewayDir: dir }, id.replace(/[^\w.-]/g, '_'), args, port, readyPath)
      if (afterStart !== undefined) {
        try {
          await afterStart(instance.url, ctx)
        } catch (err) {
          await instance.stop()
          throw err
        }
      }
      return instance
    },
    fromCheckout: (dir, tag) => breakwater({ ...options, id: `${id}@${tag}`, label: `${label} [${tag}]`, gatewayDir: dir })
  }
}

/**
 * wrk straight at the origin: the ceiling. Its CPU figure is the nginx worker's, on the load CPU.
 * @returns {Candidate}
 */
export function originDirect () {
  return {
    id: 'nginx-direct',
    label: 'nginx origin direct (ceiling, no proxy)',
    note: '(origin)',
    async start (_ctx, services) {
      return { url: services.origin.url, cpuPid: services.origin.workerPid, proc: null, stop: async () => {} }
    }
  }
}
