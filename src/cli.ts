// The command line: argv -> command. The only place that calls process.exit.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import closeWithGrace from 'close-with-grace'
import { pino } from 'pino'
import { ConfigError, loadConfigFile } from './config/index.js'
import { startDemoUpstreams, type DemoUpstreams } from './demo/upstreams.js'
import { batchedLogDestination, buildServer, type BatchSink } from './server/index.js'

export const DEFAULT_CONFIG_FILE = 'config/gateway.yaml'

const USAGE = `Usage: breakwater <command> [options]

Commands:
  start   run the gateway
  check   validate the config: prints "ok: N routes" or every error, exits 0 or 1

Options:
  --config FILE   the config file (default: ${DEFAULT_CONFIG_FILE})
  --demo          with start: also run the bundled demo upstreams on 127.0.0.1:9001 and :9002
  --help          show this help
  --version       print the version
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
        help: { type: 'boolean', default: false },
        version: { type: 'boolean', default: false }
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
      await start(values.config, values.demo)
      return
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`)
      process.exit(2)
  }
}

async function loadOrExit (file: string): Promise<Awaited<ReturnType<typeof loadConfigFile>>> {
  try {
    return await loadConfigFile(file)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n${err.issues.length} error${err.issues.length === 1 ? '' : 's'} in ${file}\n`)
    process.exit(1)
  }
}

async function check (file: string): Promise<void> {
  const config = await loadOrExit(file)
  process.stdout.write(`ok: ${config.routes.length} route${config.routes.length === 1 ? '' : 's'}\n`)
}

async function start (file: string, demo: boolean): Promise<void> {
  const config = await loadOrExit(file)
  const demoUpstreams: DemoUpstreams | null = demo ? await startDemoUpstreams() : null
  // Asynchronous writes: a line per request written synchronously to stdout costs a syscall each (measured at a
  // quarter of the proxy's CPU); lines go out in batches (server/log-destination.ts), and are flushed on exit.
  // sonic-boom's types know its string mode only; in buffer mode its write takes Buffers.
  const logStream = batchedLogDestination(pino.destination({ dest: 1, sync: false, contentMode: 'buffer' }) as unknown as BatchSink)
  const app = await buildServer(config, { logger: pino({ level: config.server.logLevel }, logStream) })
  const shutdownTimeoutMs = config.server.shutdownTimeoutMs
  // The backstop exits 1 should closing hang past the drain deadline by far; the drain itself ends in time below.
  closeWithGrace({ delay: shutdownTimeoutMs + 5_000, logger: app.log }, async ({ signal, err }) => {
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
  if (demoUpstreams !== null) app.log.info('demo upstreams on 127.0.0.1:9001 (catalog) and 127.0.0.1:9002 (echo)')
}
