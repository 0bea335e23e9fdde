// A real gateway for tests: the YAML a user would write, loaded and served on an ephemeral loopback port.
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { parseConfig, type GatewayConfig, type LogLevel } from '../../src/config/index.js'
import { buildServer } from '../../src/server/index.js'

export interface Gateway {
  readonly url: string
  readonly port: number
  readonly app: FastifyInstance
  readonly config: GatewayConfig
}

interface TapLike { teardown: (fn: () => unknown) => void }

/**
 * Loads `yaml` as config, listens on 127.0.0.1:0 with logging off (unless `logLevel` is given), closes in teardown.
 * `instanceId` names the gateway in async bulk routes' consumer groups (default: BREAKWATER_INSTANCE_ID or the host name).
 */
export async function startGateway (t: TapLike, yaml: string, options: { env?: Record<string, string>, logLevel?: LogLevel, instanceId?: string } = {}): Promise<Gateway> {
  const loaded = parseConfig(yaml, 'test.yaml', options.env ?? {})
  const config: GatewayConfig = { ...loaded, server: { ...loaded.server, logLevel: options.logLevel ?? 'silent' } }
  const app = await buildServer(config, { instanceId: options.instanceId })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, port, app, config }
}
