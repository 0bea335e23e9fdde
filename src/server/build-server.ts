// buildServer(config): composes the gateway: each route's runtime, the pipeline in front of them, the listeners of
// their events, the management plane and the lifecycle. Never listens itself.
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { actuatorPlugin, snapshotsOf, type ActuatorOptions } from '../actuator/index.js'
import { buildBulkRoutes, type BulkRoutes } from '../bulk/index.js'
import { CacheEvents } from '../cache/index.js'
import { instanceIdFrom, type GatewayConfig } from '../config/index.js'
import { rawProblemResponse, Topic, type Problem } from '../core/index.js'
import { GatewayMetrics } from '../metrics/index.js'
import { Pipeline, type RequestRecord } from '../pipeline/index.js'
import type { RouteForwarder } from '../proxy/index.js'
import { createRedisClient, readyWithin, type RedisConnection } from '../redis/index.js'
import { backoffMs, BreakerRegistry } from '../resilience/index.js'
import { accessLineWriter } from './access-log.js'
import { buildRouteCaches, type RouteCaches } from './caches.js'
import { closeSilentConnections, headerRefusal, trackConnections } from './http-server.js'
import { buildGatewayApp, buildManagementServer } from './management.js'
import { observeBreakers, observeBulk, observeCaches, observeRequests } from './observe.js'
import { buildRouteRuntimes, buildUpstreams } from './route-runtimes.js'
import { upstreamFailureLog } from './upstream-failure-log.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The gateway's metrics. */
    metrics: GatewayMetrics
    /** One circuit breaker per route, by route id. */
    breakers: BreakerRegistry
    /** The /actuator listener on `management.port`, or null when /actuator is served on the main port. */
    managementServer: FastifyInstance | null
  }
}

export interface ServerDeps {
  /** A pino logger to use instead of one built from `server.logLevel` (tests pass a silent one). */
  readonly logger?: FastifyBaseLogger
  /** The breakers', caches' and failure log's clock, in milliseconds (tests pass a fake one). Default: Date.now. */
  readonly now?: () => number
  /** This instance's name in the async bulk routes' consumer groups. Default: BREAKWATER_INSTANCE_ID, else the host name. */
  readonly instanceId?: string
}

export async function buildServer (config: GatewayConfig, deps: ServerDeps = {}): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now
  const metrics = new GatewayMetrics({ breakers: () => snapshotsOf(breakers) })
  const breakers = new BreakerRegistry(config.routes, { now: deps.now })
  const cacheEvents = new CacheEvents()
  const redis = redisConnection(config, cacheEvents)
  const caches = buildRouteCaches(config, { connection: redis, events: cacheEvents, metrics, now })
  const upstreams = buildUpstreams(config, breakers, metrics)
  const requestEnd = new Topic<RequestRecord>('request.end')
  let closing = false
  const pipeline = new Pipeline(requestEnd)
  const app = buildGatewayApp(config, { logger: deps.logger, pipeline, requestEnd, closing: () => closing })
  const bulk = buildBulkRoutes(config, {
    sendFor: (routeId) => {
      const upstream = upstreams.get(routeId) as RouteForwarder
      return async (request) => await upstream.send(request)
    },
    retryDelayMs: (retry, attempt) => backoffMs(retry, attempt),
    redis: redis === null ? null : { connection: redis, commandTimeoutMs: (config.redis as NonNullable<GatewayConfig['redis']>).commandTimeoutMs },
    log: app.log,
    instanceId: deps.instanceId ?? instanceIdFrom(process.env)
  })
  pipeline.serve(buildRouteRuntimes(config.routes, { breakers, upstreams, caches: caches.byRoute, bulk: bulk.byRoute }))

  const upstreamFailures = upstreamFailureLog(app.log, now)
  const accessLine = config.server.accessLog ? accessLineWriter(app.log) : null
  observeRequests(requestEnd, { metrics, log: app.log, accessLine, upstreamFailures })
  observeBreakers(breakers, config.routes, metrics, app.log)
  observeCaches(cacheEvents, config.routes, metrics, app.log, now)
  observeBulk(bulk, metrics)
  app.decorate('metrics', metrics)
  app.decorate('breakers', breakers)
  if (config.routes.some((route) => route.websocket)) listenForUpgrades(app, pipeline, config)

  const actuator: ActuatorOptions = {
    metrics,
    breakers,
    management: config.management,
    info: { name: PACKAGE.name, version: PACKAGE.version, routes: config.routes.map(({ id, prefix }) => ({ id, prefix })) },
    ready: () => !closing,
    cache: { routes: [...caches.byRoute.keys()], health: caches.health, purge: caches.purge },
    bulk: { routes: [...bulk.byRoute.keys()], status: bulk.status, redrive: bulk.redrive }
  }
  await serveActuator(app, config, actuator)
  app.addHook('onReady', async () => {
    // The gateway starts without Redis too (the cache fails open), but one that can reach it serves its first requests from it.
    if (redis !== null) await readyWithin(redis, (config.redis as NonNullable<GatewayConfig['redis']>).connectTimeoutMs)
    bulk.start()
  })
  closeInOrder(app, config, {
    begin: () => {
      closing = true
      pipeline.close()
    },
    upstreams,
    bulk,
    caches,
    redis,
    upstreamFailures
  })
  return app
}

const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string, version: string }

/**
 * The one Redis connection of `config.redis`, shared by the cache and the async bulk routes (neither blocks it: the
 * stream queue never reads with BLOCK); null when no feature needs it. Its errors are the cache's to log: an async
 * bulk route's queue reports its own failures when it next reads or writes.
 */
function redisConnection (config: GatewayConfig, cacheEvents: CacheEvents): RedisConnection | null {
  const redis = config.redis
  const caching = config.routes.some((route) => route.cache !== null)
  if (redis === null || !(caching || config.routes.some((route) => route.bulk?.mode === 'async'))) return null
  return createRedisClient({ ...redis, onError: caching ? (err) => { cacheEvents.failure.publish({ route: '-', err }) } : () => {} })
}

/** The actuator: on the main port, or on its own listener with management.port (the main port then has no /actuator). */
async function serveActuator (app: FastifyInstance, config: GatewayConfig, actuator: ActuatorOptions): Promise<void> {
  const { host, port } = config.management
  if (port === null) {
    app.decorate('managementServer', null)
    await app.register(actuatorPlugin, actuator)
    return
  }
  const management = buildManagementServer(config, app.log, actuator)
  app.decorate('managementServer', management)
  // Bound when the gateway starts, so a taken management port fails the start; closed after the main port drained.
  app.addHook('onReady', async () => { await management.listen({ host, port }) })
  app.addHook('onClose', async () => { await management.close() })
}

/** Node hands an Upgrade request to 'upgrade' rather than to the request listener and its header checks: made here. */
function listenForUpgrades (app: FastifyInstance, pipeline: Pipeline, config: GatewayConfig): void {
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (problem: Problem, upstream?: string, headers?: Record<string, string>): void => {
      app.log.info({ requestId: problem.requestId, url: req.url, code: problem.code, route: problem.route, upstream }, `upgrade refused: ${problem.detail}`)
      socket.end(rawProblemResponse(problem, headers))
    }
    const malformed = headerRefusal(req, config.server.maxHeaders)
    if (malformed !== null) {
      refuse(malformed)
      return
    }
    pipeline.upgrade(req, socket, head, (err, problem, headers) => { refuse(problem, err.upstream, headers) })
  })
}

/** How often a closing gateway ends the keep-alive connections that went idle since the last look. */
const IDLE_REAP_INTERVAL_MS = 50

interface ClosingParts {
  /** Shutdown begins: new requests are refused. */
  readonly begin: () => void
  readonly upstreams: ReadonlyMap<string, RouteForwarder>
  readonly bulk: BulkRoutes
  readonly caches: RouteCaches
  readonly redis: RedisConnection | null
  readonly upstreamFailures: { close: () => void }
}

/**
 * Shutdown in order: refuse new requests, end tunnels, send waiting batches, reap idle connections as they appear;
 * once the port has drained, settle bulk items, close the upstream pools, the caches and Redis.
 */
function closeInOrder (app: FastifyInstance, config: GatewayConfig, parts: ClosingParts): void {
  const { upstreams, bulk, caches, redis } = parts
  const connections = trackConnections(app.server)
  // server.close() ends only the connections idle at that moment: a keep-alive connection whose response finishes
  // later would hold close() until its keep-alive timeout (72 s), so idle connections are reaped as they appear.
  let reaper: NodeJS.Timeout | undefined
  app.addHook('preClose', (done) => {
    parts.begin()
    for (const upstream of upstreams.values()) upstream.endTunnels()
    // Batches go now rather than at maxWait: their clients are what the shutdown waits for.
    bulk.flush()
    const reap = (): void => {
      app.server.closeIdleConnections()
      closeSilentConnections(connections)
    }
    reap()
    reaper = setInterval(reap, IDLE_REAP_INTERVAL_MS)
    done()
  })
  app.addHook('onClose', async () => {
    clearInterval(reaper)
    parts.upstreamFailures.close()
    // Every accepted item is answered before the upstream pools close under its batch; a batch still in flight at the
    // deadline is aborted (its items stay in the stream for the next start or another instance).
    const unsettled = await bulk.close(config.server.shutdownTimeoutMs)
    await Promise.all([...upstreams].map(async ([id, upstream]) => { await (unsettled.has(id) ? upstream.destroy() : upstream.close()) }))
    await caches.close()
    await redis?.close()
  })
}
