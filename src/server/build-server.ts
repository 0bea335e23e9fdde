// buildServer(config): composes the gateway: each route's runtime, the pipeline in front of them, the listeners of
// their events, the management plane, reloads and the lifecycle. Never listens itself.
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { actuatorPlugin, snapshotsOf, type ActuatorOptions, type RefreshResult } from '../actuator/index.js'
import { BulkRouteFactory, bulkGaugesOf, bulkStatusOf, type BulkRoute } from '../bulk/index.js'
import { CacheEvents, type RouteCache } from '../cache/index.js'
import { instanceIdFrom, watchConfigFile, type GatewayConfig } from '../config/index.js'
import { rawProblemResponse, Topic, type Problem } from '../core/index.js'
import { GatewayMetrics } from '../metrics/index.js'
import { Pipeline, type RequestRecord } from '../pipeline/index.js'
import { UpstreamPools } from '../proxy/index.js'
import { createRedisClient, readyWithin, type RedisConnection } from '../redis/index.js'
import { backoffMs, BreakerRegistry } from '../resilience/index.js'
import { accessLineWriter } from './access-log.js'
import { RouteCaches } from './caches.js'
import { closeSilentConnections, headerRefusal, trackConnections } from './http-server.js'
import { buildGatewayApp, buildManagementServer } from './management.js'
import { observeBreakers, observeBulk, observeCaches, observeRequests } from './observe.js'
import { ConfigReloader, sha256Of, type ReloadOutcome, type ReloadTrigger } from './reload.js'
import { RouteRuntimes, type RoutesChange } from './route-runtimes.js'
import { rotateListenerTls } from './tls.js'
import { upstreamFailureLog } from './upstream-failure-log.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The gateway's metrics. */
    metrics: GatewayMetrics
    /** One circuit breaker per route, by route id. */
    breakers: BreakerRegistry
    /** The /actuator listener on `management.port`, or null when /actuator is served on the main port. */
    managementServer: FastifyInstance | null
    /** Reads the config file again and applies it whole, or refuses it whole (SIGHUP, `breakwater reload`). */
    reloadConfig: (trigger: ReloadTrigger) => Promise<ReloadOutcome>
  }
}

export interface ServerDeps {
  /** A pino logger to use instead of one built from `server.logLevel` (tests pass a silent one). */
  readonly logger?: FastifyBaseLogger
  /** The breakers', caches' and failure log's clock, in milliseconds (tests pass a fake one). Default: Date.now. */
  readonly now?: () => number
  /** This instance's name in the async bulk routes' consumer groups. Default: BREAKWATER_INSTANCE_ID, else the host name. */
  readonly instanceId?: string
  /** The file `config` was loaded from: what a reload reads again. Without it the gateway cannot reload. */
  readonly configFile?: string
  /** Reload when the file changes, as `server.watchConfig: true` does (`start --watch`). */
  readonly watchConfig?: boolean
}

export async function buildServer (config: GatewayConfig, deps: ServerDeps = {}): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now
  const metrics = new GatewayMetrics({ breakers: () => snapshotsOf(breakers) })
  const breakers = new BreakerRegistry([], { now: deps.now })
  const cacheEvents = new CacheEvents()
  // A failing connection bypasses the cache: said as the cache's warning while a route caches.
  const redis = new SharedRedis(config, (err) => {
    if ([...routes.current.values()].some((parts) => parts.cache !== null)) cacheEvents.failure.publish({ route: '-', err })
  })
  const caches = new RouteCaches({ redis: config.redis, connection: () => redis.connect(), events: cacheEvents, metrics, now })
  const requestEnd = new Topic<RequestRecord>('request.end')
  let closing = false
  const pipeline = new Pipeline(requestEnd)
  const app = buildGatewayApp(config, { logger: deps.logger, pipeline, requestEnd, closing: () => closing })
  const bulk = new BulkRouteFactory({
    retryDelayMs: (retry, attempt) => backoffMs(retry, attempt),
    redis: () => config.redis === null ? null : { connection: redis.connect(), commandTimeoutMs: config.redis.commandTimeoutMs },
    log: app.log,
    instanceId: deps.instanceId ?? instanceIdFrom(process.env)
  })
  const routes = new RouteRuntimes({ breakers, pools: new UpstreamPools(), caches, bulk, metrics, log: app.log, shutdownTimeoutMs: config.server.shutdownTimeoutMs })
  const logSettings = { accessLog: config.server.accessLog }
  let serving = config
  /** Makes `next` the config serving: its routes from the next request on, its log settings at once. */
  const apply = (next: GatewayConfig): RoutesChange => {
    const { runtimes, change } = routes.apply(next)
    const built = new Set(next === config ? next.routes.map((route) => route.id) : [...change.added, ...change.changed])
    for (const route of next.routes) {
      if (built.has(route.id) && route.upstreamTls?.rejectUnauthorized === false) {
        app.log.warn({ route: route.id }, `route ${route.id}: upstreamTls.rejectUnauthorized: false: its upstreams' certificates are NOT verified; anyone on the path can impersonate them`)
      }
    }
    pipeline.serve(runtimes)
    if (next.server.logLevel !== serving.server.logLevel) app.log.level = next.server.logLevel
    logSettings.accessLog = next.server.accessLog
    serving = next
    return change
  }
  apply(config)
  const reloader = new ConfigReloader({ file: deps.configFile ?? null, initial: config, apply, metrics, log: app.log },
    sha256Of(deps.configFile === undefined ? JSON.stringify(config) : await readFile(deps.configFile)))

  app.addHook('onClose', async () => { await reloader.close() })
  const upstreamFailures = upstreamFailureLog(app.log, now)
  observeRequests(requestEnd, { metrics, log: app.log, accessLine: accessLineWriter(app.log), logSettings, upstreamFailures })
  observeBreakers(breakers, metrics, app.log)
  observeCaches(cacheEvents, metrics, app.log, now)
  observeBulk(bulk.events, async () => await bulkGaugesOf(bulkRoutesOf(routes)), metrics)
  app.decorate('metrics', metrics)
  app.decorate('breakers', breakers)
  app.decorate('reloadConfig', async (trigger: ReloadTrigger) => await reloader.reload(trigger))
  listenForUpgrades(app, pipeline, config)

  const actuator: ActuatorOptions = {
    metrics,
    breakers,
    management: {
      get token () { return serving.management.token },
      get showDetails () { return serving.management.showDetails }
    },
    info: {
      name: PACKAGE.name,
      version: PACKAGE.version,
      get routes () { return serving.routes.map(({ id, prefix }) => ({ id, prefix })) }
    },
    ready: () => !closing,
    cache: {
      routes: () => [...routes.current.values()].filter((parts) => parts.cache !== null).map((parts) => parts.route.id),
      health: () => caches.health(),
      purge: async (routeId, pathPrefix) => await (routes.current.get(routeId)?.cache as RouteCache).purge(pathPrefix)
    },
    bulk: {
      routes: () => bulkRoutesOf(routes).map((route) => route.route.id),
      status: async () => await bulkStatusOf(bulkRoutesOf(routes)),
      redrive: async (routeId) => await (routes.current.get(routeId)?.bulk as BulkRoute).redrive()
    },
    config: {
      current: () => reloader.current,
      refresh: !reloader.reloadable ? null : async () => refreshResult(await reloader.reload('refresh'))
    }
  }
  await serveActuator(app, config, actuator)
  app.addHook('onReady', async () => {
    // The gateway starts without Redis too (the cache fails open), but one that can reach it serves its first requests from it.
    const connection = redis.connection
    if (connection !== null) await readyWithin(connection, (config.redis as NonNullable<GatewayConfig['redis']>).connectTimeoutMs)
    routes.start()
    reloader.prepare()
  })
  if (deps.configFile !== undefined && (deps.watchConfig === true || config.server.watchConfig)) {
    const watcher = watchConfigFile(deps.configFile, () => {
      reloader.reload('watch', true).catch((err: unknown) => { app.log.error({ err }, 'config reload failed') })
    })
    app.addHook('preClose', (done) => {
      watcher.close()
      done()
    })
  }
  const tls = config.server.tls
  if (tls !== null) {
    const rotation = rotateListenerTls(app.server as unknown as HttpsServer, tls, app.log)
    app.addHook('preClose', (done) => {
      rotation.close()
      done()
    })
  }
  closeInOrder(app, {
    begin: () => {
      closing = true
      pipeline.close()
    },
    routes,
    caches,
    redis,
    upstreamFailures
  })
  return app
}

const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string, version: string }

/**
 * The one Redis connection of `config.redis`, shared by the cache and the async bulk routes (neither blocks it: the
 * stream queue never reads with BLOCK), made when the first of them needs it (at the start, or when a reload adds the
 * first caching or async bulk route). Its errors are the cache's to log: an async bulk route's queue reports its own
 * failures when it next reads or writes.
 */
class SharedRedis {
  readonly #config: GatewayConfig
  readonly #onError: (err: Error) => void
  #connection: RedisConnection | null = null

  constructor (config: GatewayConfig, onError: (err: Error) => void) {
    this.#config = config
    this.#onError = onError
  }

  /** The connection, or null while nothing needed it. */
  get connection (): RedisConnection | null {
    return this.#connection
  }

  /** The connection, made on first call; only asked for with `redis:` configured. */
  connect (): RedisConnection {
    if (this.#connection === null) {
      this.#connection = createRedisClient({ ...(this.#config.redis as NonNullable<GatewayConfig['redis']>), onError: this.#onError })
    }
    return this.#connection
  }

  async close (): Promise<void> {
    await this.#connection?.close()
  }
}

/** The bulk routes served now. */
function bulkRoutesOf (routes: RouteRuntimes): BulkRoute[] {
  const bulk: BulkRoute[] = []
  for (const parts of routes.current.values()) if (parts.bulk !== null) bulk.push(parts.bulk)
  return bulk
}

/** A reload's outcome as POST /actuator/refresh answers it. */
function refreshResult (outcome: ReloadOutcome): RefreshResult {
  if (outcome.kind === 'refused') return { refused: outcome.error }
  if (outcome.kind === 'unchanged') throw new Error('expected a refresh to reload whatever the file holds')
  return { applied: outcome.applied }
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

/**
 * Node hands an Upgrade request to 'upgrade' rather than to the request listener and its header checks: made here.
 * Listened for whatever the routes: a reload may add a WebSocket route.
 */
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
  readonly routes: RouteRuntimes
  readonly caches: RouteCaches
  readonly redis: SharedRedis
  readonly upstreamFailures: { close: () => void }
}

/**
 * Shutdown in order: refuse new requests, end tunnels, send waiting batches, reap idle connections as they appear;
 * once the port has drained, settle bulk items, close the upstream pools, the caches and Redis.
 */
function closeInOrder (app: FastifyInstance, parts: ClosingParts): void {
  const { routes, caches, redis } = parts
  const connections = trackConnections(app.server)
  // server.close() ends only the connections idle at that moment: a keep-alive connection whose response finishes
  // later would hold close() until its keep-alive timeout (72 s), so idle connections are reaped as they appear.
  let reaper: NodeJS.Timeout | undefined
  app.addHook('preClose', (done) => {
    parts.begin()
    // Tunnels end, and batches go now rather than at maxWait: their clients are what the shutdown waits for.
    routes.flush()
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
    await routes.close()
    await caches.close()
    await redis.close()
  })
}
