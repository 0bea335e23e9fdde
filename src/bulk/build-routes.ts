// buildBulkRoutes(config): a config's bulk routes, each on its own queue, and what the actuator and metrics read of them.
import type { BulkConfig, GatewayConfig, RouteConfig } from '../config/index.js'
import type { BulkSend } from './bulk-writer.js'
import { BulkEvents } from './events.js'
import { MemoryQueue } from './memory-queue.js'
import type { BulkQueue } from './queue.js'
import { AsyncBulkRoute, SyncBulkRoute, type BulkLog, type BulkRetryConfig, type BulkRoute, type BulkRouteGauges, type BulkRouteStatus } from './routes.js'
import { StreamQueue, type StreamQueueConnection } from './stream-queue.js'

/** Bytes an item's id takes in X-Bulk-Item-Ids: a stream entry id (`<ms>-<seq>`) and its comma. */
const ITEM_ID_HEADER_BYTES = 17
/** nginx's default limit of one request header line (large_client_header_buffers 4 8k): past it, a startup warning. */
const ITEM_IDS_HEADER_WARN_BYTES = 8 * 1024

/** The bulk routes of a config, by route id, and what the actuator and metrics read of them. */
export interface BulkRoutes {
  readonly byRoute: ReadonlyMap<string, BulkRoute>
  /** What the bulk routes publish: metrics subscribe. */
  readonly events: BulkEvents
  /** Every route's figures, for the bulk gauges. */
  gauges: () => Promise<readonly BulkRouteGauges[]>
  status: () => Promise<Record<string, BulkRouteStatus>>
  /** Puts a route's dead letters back in its queue; how many went. */
  redrive: (routeId: string) => Promise<number>
  /** The gateway is ready: async routes start sending. */
  start: () => void
  /** Shutdown begins: every route sends what waits now. */
  flush: () => void
  /**
   * Refuses further items and settles what was accepted within `timeoutMs`; the Redis connection is the composer's
   * to close after. Resolves with the ids of the routes whose batches were still in flight at the deadline.
   */
  close: (timeoutMs: number) => Promise<ReadonlySet<string>>
}

/** The Redis the async routes queue in: the composer's connection, made, awaited and closed by it. */
export interface BulkRedis {
  readonly connection: StreamQueueConnection
  /** A queue command not answered within this many ms fails. */
  readonly commandTimeoutMs: number
}

export interface BulkRoutesOptions {
  /** Route `routeId`'s sender of one attempt at a batch, through its breaker and timeout (the proxy's RouteForwarder.send). */
  readonly sendFor: (routeId: string) => BulkSend
  /** Milliseconds before retry `attempt` of a failed batch, by the route's retry config. */
  readonly retryDelayMs: (retry: BulkRetryConfig, attempt: number) => number
  /** Where async routes queue durably; null keeps their queues in memory (an accepted item dies with the process). */
  readonly redis: BulkRedis | null
  readonly log: BulkLog
  /** This instance's name in the async routes' consumer groups. */
  readonly instanceId: string
}

export function buildBulkRoutes (config: GatewayConfig, options: BulkRoutesOptions): BulkRoutes {
  const { sendFor, retryDelayMs, redis, log, instanceId } = options
  const events = new BulkEvents()
  const queueFor = (route: RouteConfig): BulkQueue => {
    const { batchSize } = route.bulk as BulkConfig
    if (batchSize * ITEM_ID_HEADER_BYTES > ITEM_IDS_HEADER_WARN_BYTES) {
      log.warn({ route: route.id, batchSize }, `bulk route ${route.id}: X-Bulk-Item-Ids of a full batch takes about ${Math.ceil(batchSize * ITEM_ID_HEADER_BYTES / 1024)} KB; the upstream must accept header fields that large (nginx: large_client_header_buffers; Node: --max-http-header-size), or lower batchSize`)
    }
    if (redis === null) {
      log.warn({ route: route.id }, `bulk route ${route.id} runs async in memory: without redis:, an accepted item is lost if this process dies`)
      return new MemoryQueue({ maxItems: (route.bulk as BulkConfig).maxPending })
    }
    return new StreamQueue(redis.connection, {
      route: route.id,
      consumer: instanceId,
      commandTimeoutMs: redis.commandTimeoutMs,
      claimAfterMs: (route.bulk as BulkConfig).claimAfterMs
    })
  }
  const byRoute = new Map<string, BulkRoute>(config.routes.filter((route) => route.bulk !== null).map((route) => {
    const deps = { send: sendFor(route.id), retryDelayMs, events, log }
    return [route.id, (route.bulk as BulkConfig).mode === 'sync' ? new SyncBulkRoute(route, deps) : new AsyncBulkRoute(route, deps, queueFor(route))]
  }))
  const routes = [...byRoute.values()]
  return {
    byRoute,
    events,
    gauges: async () => await Promise.all(routes.map(async (route) => await route.gauges())),
    status: async () => Object.fromEntries(await Promise.all(routes.map(async (route) => [route.route.id, await route.status()] as const))),
    redrive: async (routeId) => await (byRoute.get(routeId) as BulkRoute).redrive(),
    start: () => { for (const route of routes) route.start() },
    flush: () => { for (const route of routes) route.flush() },
    close: async (timeoutMs) => {
      const settled = await Promise.all(routes.map(async (route) => await route.close(timeoutMs)))
      return new Set(routes.filter((_route, i) => !settled[i]).map((route) => route.route.id))
    }
  }
}
