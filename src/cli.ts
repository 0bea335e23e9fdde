// The command line: argv -> command. The only place that calls process.exit.
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import closeWithGrace from 'close-with-grace'
import { pino } from 'pino'
import { ConfigError, loadConfigFile, type GatewayConfig, type LoadOptions } from './config/index.js'
import type { DemoUpstreams } from './demo/upstreams.js'

export const DEFAULT_CONFIG_FILE = 'config/gateway.yaml'

const USAGE = `Usage: breakwater <command> [options]

Commands:
  start   run the gateway; SIGHUP reloads the config file
  check   validate the config: prints "ok: N routes" or every error, exits 0 or 1
  reload  make the running gateway reload its config file (POST /actuator/refresh on its
          management address, with management.token, both read from the config file)
  autoscale
          run the Redis Cluster autoscaler on the cluster under redis.cluster, with the
          autoscaler: block's settings; /actuator/prometheus and /actuator/health on autoscaler.port

Options:
  --config FILE   the config file (default: ${DEFAULT_CONFIG_FILE})
  --demo          with start: also run the bundled demo upstreams on 127.0.0.1:9001 and :9002
  --watch         with start: reload when the config file changes (as server.watchConfig: true)
  -h, --help      show this help
  -v, --version   print the version
`

function version (): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

export async function main (argv: readonly string[]): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: 'string', default: DEFAULT_CONFIG_FILE },
        demo: { type: 'boolean', default: false },
        watch: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false }
      }
    })
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`)
    process.exit(2)
  }
  const { values, positionals } = parsed
  if (values.version) {
    process.stdout.write(`breakwater ${version()}\n`)
    return
  }
  const command = positionals[0]
  if (values.help || command === undefined) {
    process.stdout.write(USAGE)
    if (!values.help) process.exitCode = 2
    return
  }
  switch (command) {
    case 'check':
      await check(values.config)
      return
    case 'start':
      await start(values.config, values.demo, values.watch)
      return
    case 'reload':
      await reload(values.config)
      return
    case 'autoscale':
      await autoscale(values.config)
      return
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`)
      process.exit(2)
  }
}

/** Loads `file`, or prints its errors (and `after`, a line saying what follows from them) and exits 1. */
async function loadOrExit (file: string, options: LoadOptions = {}, after = ''): Promise<Awaited<ReturnType<typeof loadConfigFile>>> {
  try {
    return await loadConfigFile(file, process.env, options)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n${err.issues.length} error${err.issues.length === 1 ? '' : 's'} in ${file}\n${after === '' ? '' : `${after}\n`}`)
    process.exit(1)
  }
}

// A gateway without routes answers 404 to everything: `check` and `start` refuse it; `autoscale` needs no routes.
async function check (file: string): Promise<void> {
  const config = await loadOrExit(file, { requireRoutes: true })
  process.stdout.write(`ok: ${config.routes.length} route${config.routes.length === 1 ? '' : 's'}\n`)
}

/**
 * What `start` runs on, loaded only by it (`autoscale` loads its own root the same way): Fastify, undici, ioredis and
 * prom-client take a second of CPU to load, which `check` and `--version` (run in CI pipelines, on loaded machines)
 * need not pay.
 */
async function runtime (): Promise<{ server: typeof import('./server/index.js'), demo: typeof import('./demo/upstreams.js') }> {
  const [server, demo] = await Promise.all([import('./server/index.js'), import('./demo/upstreams.js')])
  return { server, demo }
}

async function start (file: string, demo: boolean, watch: boolean): Promise<void> {
  const config = await loadOrExit(file, { requireRoutes: true })
  const { server: { buildServer, logDestination, withoutListeningLines }, demo: { startDemoUpstreams } } = await runtime()
  const demoUpstreams: DemoUpstreams | null = demo ? await startDemoUpstreams() : null
  // Asynchronous writes: a line per request written synchronously to stdout costs a syscall each (measured at a
  // quarter of the proxy's CPU); lines go out in batches (server/log-destination.ts), and are flushed on exit. What
  // stdout cannot take is bounded: past it lines are dropped, and counted here once stdout has caught up.
  const logStream = logDestination(1, (lines, bytes) => {
    logger.warn({ droppedLines: lines, droppedBytes: bytes }, `${lines} log lines were dropped: stdout did not take them as fast as they came`)
  })
  const logger = pino({ level: config.server.logLevel, hooks: { logMethod: withoutListeningLines } }, logStream)
  const app = await buildServer(config, { logger, configFile: file, watchConfig: watch })
  const shutdownTimeoutMs = config.server.shutdownTimeoutMs
  // SIGHUP reloads, as it does nginx and HAProxy: close-with-grace would stop on it.
  process.on('SIGHUP', () => {
    app.reloadConfig('signal').catch((err: unknown) => { app.log.error({ err }, 'config reload failed') })
  })
  // The backstop exits 1 should closing hang past the drain deadline by far; the drain itself ends in time below.
  closeWithGrace({ delay: shutdownTimeoutMs + 5_000, logger: app.log, skip: ['SIGHUP'] }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an uncaught error')
    else app.log.info({ signal }, 'shutting down: draining in-flight requests')
    const deadline = setTimeout(() => {
      app.log.warn({ shutdownTimeoutMs }, 'shutdown timeout reached: closing the connections still open')
      app.server.closeAllConnections()
    }, shutdownTimeoutMs)
    await app.close()
    clearTimeout(deadline)
    await demoUpstreams?.close()
    app.log.info('stopped')
    logStream.flushSync()
  })
  await app.listen({ host: config.server.host, port: config.server.port })
  logStarted(app.log, file, config, [
    { role: app.managementServer === null ? 'traffic+management' : 'traffic', address: app.server.address() as AddressInfo },
    ...(app.managementServer === null ? [] : [{ role: 'management', address: app.managementServer.server.address() as AddressInfo }])
  ])
  if (demoUpstreams !== null) app.log.info('demo upstreams on 127.0.0.1:9001 (catalog) and 127.0.0.1:9002 (echo)')
}

/** Where the cache's shared entries live: none without a caching route. */
function cacheStoreOf (config: GatewayConfig): 'none' | 'memory' | 'redis' | 'redis-cluster' {
  if (!config.routes.some((route) => route.cache !== null)) return 'none'
  if (config.redis === null) return 'memory'
  return config.redis.cluster === null ? 'redis' : 'redis-cluster'
}

/** The one line that says what started: version, config file, routes, cache store, and each listener with its role. */
function logStarted (log: { info: (fields: object, msg: string) => void }, file: string, config: GatewayConfig, bound: ReadonlyArray<{ role: string, address: AddressInfo }>): void {
  const listeners = bound.map(({ role, address }) => ({
    role,
    // The management listener is plain HTTP; the traffic listener is HTTPS with server.tls.
    url: `${role !== 'management' && config.server.tls !== null ? 'https' : 'http'}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
  }))
  const routes = config.routes.length
  const cacheStore = cacheStoreOf(config)
  const where = listeners.map(({ role, url }) => `${role.replace('+', ' and ')} on ${url}`).join(', ')
  log.info({ version: version(), config: file, routes, cacheStore, listeners },
    `breakwater ${version()} started with ${file}: ${routes} route${routes === 1 ? '' : 's'}, cache store ${cacheStore}, ${where}`)
}

/**
 * Asks the gateway running on `file` to reload it: POST /actuator/refresh on its management address (management.port,
 * else server.port; a wildcard host is reached on loopback) with management.token. Prints the answer; exits 1 when
 * the gateway refused the file or could not be reached.
 */
async function reload (file: string): Promise<void> {
  // Checked here first: the file names the gateway's address and token, and a file the gateway would refuse need not be sent.
  const config = await loadOrExit(file, { requireRoutes: true }, 'the gateway was not asked to reload: it keeps serving its config')
  const { token } = config.management
  if (token === null) {
    process.stderr.write(`${file}: breakwater reload needs management.token (POST /actuator/refresh is a write); or send SIGHUP to the gateway's process\n`)
    process.exit(1)
  }
  const port = config.management.port ?? config.server.port
  const host = loopbackFor(config.management.port === null ? config.server.host : config.management.host)
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/actuator/refresh`
  let answer: Response
  try {
    answer = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(RELOAD_TIMEOUT_MS) })
  } catch (err) {
    process.stderr.write(`cannot reach the gateway at ${url}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}\n`)
    process.exit(1)
  }
  const body = await answer.text()
  if (answer.ok) {
    process.stdout.write(`${body}\n`)
    return
  }
  let detail = body
  try {
    const problem = JSON.parse(body) as { detail?: string, errors?: Array<{ text: string }> }
    detail = [problem.detail, ...(problem.errors ?? []).map((error) => error.text)].filter((line) => line !== undefined).join('\n')
  } catch {
    // Not a problem document: printed as it came.
  }
  process.stderr.write(`reload refused (${answer.status}): ${detail}\n`)
  process.exit(1)
}

/** How long `breakwater reload` waits for the answer: a reload validates and swaps in milliseconds. */
const RELOAD_TIMEOUT_MS = 30_000

/** A listener on every address is reached on loopback. */
function loopbackFor (host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1'
  if (host === '::') return '::1'
  return host
}

async function autoscale (file: string): Promise<void> {
  const config = await loadOrExit(file)
  const { ADMIN_COMMAND_MARGIN_MS, buildAutoscaler } = await import('./autoscaler-server/index.js')
  if (config.redis?.cluster == null) {
    process.stderr.write(`${file}: the autoscaler manages the Redis Cluster under redis.cluster, and this config has none\n`)
    process.exit(1)
  }
  // A line every interval at most: synchronous writes cost nothing here, and no line is lost on a crash.
  const logger = pino({ level: config.server.logLevel, base: { pid: process.pid, component: 'autoscaler' } })
  const autoscaler = buildAutoscaler(config, { logger })
  const { migration } = config.autoscaler
  // Stopping waits for the slot being moved (its MIGRATE batches, each bounded by the admin command timeout); past
  // that by far, exit 1: the next leader repairs a slot left open.
  closeWithGrace({ delay: 3 * (migration.timeoutMs + ADMIN_COMMAND_MARGIN_MS), logger }, async ({ signal, err }) => {
    if (err !== undefined) logger.error({ err }, 'shutting down after an uncaught error')
    else logger.info({ signal }, 'shutting down: stopping after the current slot, then releasing the leader lease')
    await autoscaler.close()
    logger.info('stopped')
  })
  await autoscaler.app.listen({ host: config.server.host, port: config.autoscaler.port })
  logger.info({ mode: config.autoscaler.mode, intervalMs: config.autoscaler.intervalMs }, `autoscaler started in ${config.autoscaler.mode} mode`)
  autoscaler.start()
}
