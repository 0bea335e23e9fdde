// The one in-process gateway of the tests: the YAML a user would write, loaded and served on an ephemeral loopback port.
import type { AddressInfo } from 'node:net'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { parseConfig, type GatewayConfig, type LogLevel } from '../../src/config/index.js'
import { buildServer } from '../../src/server/index.js'

export interface Gateway {
  readonly url: string
  readonly port: number
  readonly app: FastifyInstance
  readonly config: GatewayConfig
  /** The management listener's URL, or `url` when /actuator is on the main port. */
  readonly actuatorUrl: string
}

interface TapLike { teardown: (fn: () => unknown) => void }

export interface GatewayOptions {
  /** The environment `${VAR}` references in the YAML read. @default {} */
  readonly env?: Record<string, string>
  /** The gateway's log level; ignored when `logger` is given. @default 'silent' */
  readonly logLevel?: LogLevel
  /** A pino logger the test reads, in place of one built from the config (whose log level is then left as written). */
  readonly logger?: FastifyBaseLogger
  /** The breakers', caches' and failure log's clock in ms, e.g. a FakeClock's `now`. @default Date.now */
  readonly now?: () => number
  /** The gateway's name in async bulk routes' consumer groups. @default BREAKWATER_INSTANCE_ID, else the host name */
  readonly instanceId?: string
  /** The file `yaml` was written to: what the gateway reloads (POST /actuator/refresh, server.watchConfig). */
  readonly configFile?: string
}

/** Loads `yaml` as config, listens on 127.0.0.1:0 with logging off (unless `logLevel` or `logger` is given), closes in teardown. */
export async function startGateway (t: TapLike, yaml: string, options: GatewayOptions = {}): Promise<Gateway> {
  const loaded = parseConfig(yaml, 'test.yaml', options.env ?? {})
  const config: GatewayConfig = options.logger !== undefined && options.logLevel === undefined
    ? loaded
    : { ...loaded, server: { ...loaded.server, logLevel: options.logLevel ?? 'silent' } }
  const app = await buildServer(config, { logger: options.logger, now: options.now, instanceId: options.instanceId, configFile: options.configFile })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}`
  const management = app.managementServer
  const actuatorUrl = management === null ? url : `http://127.0.0.1:${(management.server.address() as AddressInfo).port}`
  return { url, port, app, config, actuatorUrl }
}
