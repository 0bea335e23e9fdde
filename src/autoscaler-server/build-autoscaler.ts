// buildAutoscaler(config): composes the Redis Cluster autoscaler (admin connections, lease, journal, control loop, metrics, /actuator); never listens itself.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { autoscalerActuatorPlugin } from '../actuator/index.js'
import { ClusterAdmin, ControlLoop, Journal, Lease, splitAddress } from '../autoscaler/index.js'
import { instanceIdFrom, type GatewayConfig } from '../config/index.js'
import { asGatewayError, problemFor } from '../core/index.js'
import { AutoscalerMetrics } from '../metrics/index.js'
import { requestIdFor } from '../pipeline/index.js'
import { connectNode, createRedisClient, parseRedisAddress, type RedisAddress } from '../redis/index.js'
// The /actuator listener is built like the gateway's: same server options, client errors and problem+json.
import { createGatewayServer, onClientError, QuietRequestLog, replyProblem } from '../server/index.js'

/**
 * How much longer than MIGRATE's own timeout an admin command may take (ms): MIGRATE answers only once the target
 * has, and a client that gave up first would leave Redis running a command nobody awaits.
 */
export const ADMIN_COMMAND_MARGIN_MS = 10_000

/** The lease lasts this many intervals: one late renewal does not lose it, a dead leader is replaced within it. */
export const LEASE_INTERVALS = 3

export interface AutoscalerDeps {
  readonly logger: FastifyBaseLogger
  /**
   * This process's name on the lease, shown by standbys.
   * @default BREAKWATER_INSTANCE_ID (else the host name), then the pid
   */
  readonly holder?: string
}

export interface Autoscaler {
  /** The /actuator listener; the caller listens on `autoscaler.port`. */
  readonly app: FastifyInstance
  readonly loop: ControlLoop
  /** Begins measuring: call once listening. */
  start: () => void
  /** Stops the loop (the operation under way after its current slot), releases the lease, closes every connection. */
  close: () => Promise<void>
}

/** `host:port` of a redis:// URL, 6379 when it names no port. */
function addressOf (url: string): string {
  // The config's checks only let Redis URLs through.
  return (parseRedisAddress(url) as RedisAddress).address
}

/**
 * The lease's command timeout (ms): a third of the interval at most, so that a hung Redis fails a renewal in time for
 * the next one, and the redis block's commandTimeout when that is shorter.
 */
export function leaseCommandTimeoutMs (intervalMs: number, commandTimeoutMs: number): number {
  return Math.max(1, Math.min(commandTimeoutMs, Math.floor(intervalMs / 3)))
}

/** Throws a TypeError when the config names no Redis Cluster: the autoscaler manages the one under `redis.cluster`. */
export function buildAutoscaler (config: GatewayConfig, deps: AutoscalerDeps): Autoscaler {
  const cluster = config.redis?.cluster
  if (config.redis === null || cluster == null) throw new TypeError(`${config.source}: the autoscaler manages the Redis Cluster under redis.cluster, and this config has none`)
  const { connectTimeoutMs, commandTimeoutMs, keyPrefix } = config.redis
  const settings = config.autoscaler
  const log = deps.logger
  const holder = deps.holder ?? `${instanceIdFrom(process.env)}/${process.pid}`
  const metrics = new AutoscalerMetrics()

  const admin = new ClusterAdmin({
    seeds: cluster.map(addressOf),
    connect: async (address) => {
      const [host, port] = splitAddress(address)
      return await connectNode({ host, port, like: cluster[0], connectTimeoutMs, commandTimeoutMs: settings.migration.timeoutMs + ADMIN_COMMAND_MARGIN_MS })
    },
    pipeline: settings.migration.pipeline,
    migrationTimeoutMs: settings.migration.timeoutMs,
    minMasters: settings.minMasters,
    maxMasters: settings.maxMasters,
    onSlotMoved: (move) => {
      metrics.countSlotsMoved(1)
      metrics.countKeysMoved(move.keys)
    }
  })
  const leaseConnection = createRedisClient({
    cluster,
    keyPrefix,
    connectTimeoutMs,
    commandTimeoutMs: leaseCommandTimeoutMs(settings.intervalMs, commandTimeoutMs),
    onError: (err) => { log.debug({ err }, 'lease connection error') }
  })
  const loop = new ControlLoop({
    config: settings,
    admin,
    lease: new Lease({ client: leaseConnection.client, key: `${keyPrefix}autoscaler:leader`, holder, ttlMs: LEASE_INTERVALS * settings.intervalMs }),
    journal: new Journal(leaseConnection.client, `${keyPrefix}autoscaler:journal`),
    spares: settings.spareNodes.map(addressOf),
    metrics,
    log
  })

  const app = Fastify({
    loggerInstance: log,
    // Scrapes and probes every few seconds would drown the loop's own lines.
    logController: new QuietRequestLog(),
    genReqId: requestIdFor,
    serverFactory: (handler) => createGatewayServer(handler, config.server),
    clientErrorHandler: onClientError
  }) as unknown as FastifyInstance
  app.register(autoscalerActuatorPlugin, { metrics, status: () => loop.status })
  app.setErrorHandler((err, request, reply) => {
    const known = asGatewayError(err)
    if (known.statusCode >= 500) request.log.warn({ err: known.cause ?? err }, known.message)
    replyProblem(reply, problemFor(known.code, known.message, { requestId: request.id }))
  })
  app.setNotFoundHandler((request, reply) => {
    replyProblem(reply, problemFor('BW_ERR_ACTUATOR_NOT_FOUND', 'no actuator endpoint at this path', { requestId: request.id }))
  })

  let started = false
  return {
    app,
    loop,
    start: () => {
      started = true
      loop.start()
    },
    close: async () => {
      if (started) await loop.stop()
      await app.close()
      await admin.close()
      await leaseConnection.close()
    }
  }
}
