// The bulk routes' factory (each route on its own queue, all on one set of topics), and what the actuator and metrics read of them.
import type { BulkConfig, RouteConfig } from '../config/index.js'
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

/** The Redis the async routes queue in: the composer's connection, made, awaited and closed by it. */
export interface BulkRedis {
  readonly connection: StreamQueueConnection
  /** A queue command not answered within this many ms fails. */
  readonly commandTimeoutMs: number
}

export interface BulkRoutesOptions {
  /** Milliseconds before retry `attempt` of a failed batch, by the route's retry config. */
  readonly retryDelayMs: (retry: BulkRetryConfig, attempt: number) => number
  /** Where async routes queue durably; null keeps their queues in memory (an accepted item dies with the process). */
  readonly redis: () => BulkRedis | null
  readonly log: BulkLog
  /** This instance's name in the async routes' consumer groups. */
  readonly instanceId: string
}

/** Builds bulk routes, each on its own queue, all publishing on one set of topics (metrics subscribe). */
export class BulkRouteFactory {
  /** What the bulk routes publish. */
  readonly events = new BulkEvents()
  readonly #options: BulkRoutesOptions

  constructor (options: BulkRoutesOptions) {
    this.#options = options
  }

  /** Route `route`'s coalescing (it has a `bulk:` block), sending each attempt at a batch with `send`. */
  build (route: RouteConfig, send: BulkSend): BulkRoute {
    const { retryDelayMs, log } = this.#options
    const deps = { send, retryDelayMs, events: this.events, log }
    return (route.bulk as BulkConfig).mode === 'sync' ? new SyncBulkRoute(route, deps) : new AsyncBulkRoute(route, deps, this.#queueFor(route))
  }

  #queueFor (route: RouteConfig): BulkQueue {
    const { log, instanceId } = this.#options
    const { batchSize, maxPending, claimAfterMs } = route.bulk as BulkConfig
    if (batchSize * ITEM_ID_HEADER_BYTES > ITEM_IDS_HEADER_WARN_BYTES) {
      log.warn({ route: route.id, batchSize }, `bulk route ${route.id}: X-Bulk-Item-Ids of a full batch takes about ${Math.ceil(batchSize * ITEM_ID_HEADER_BYTES / 1024)} KB; the upstream must accept header fields that large (nginx: large_client_header_buffers; Node: --max-http-header-size), or lower batchSize`)
    }
    const redis = this.#options.redis()
    if (redis === null) {
      log.warn({ route: route.id }, `bulk route ${route.id} runs async in memory: without redis:, an accepted item is lost if this process dies`)
      return new MemoryQueue({ maxItems: maxPending })
    }
    return new StreamQueue(redis.connection, { route: route.id, consumer: instanceId, commandTimeoutMs: redis.commandTimeoutMs, claimAfterMs })
  }
}

/** The bulk gauges' figures of `routes`. */
export async function bulkGaugesOf (routes: readonly BulkRoute[]): Promise<readonly BulkRouteGauges[]> {
  return await Promise.all(routes.map(async (route) => await route.gauges()))
}

/** What /actuator/bulk shows of `routes`, by route id. */
export async function bulkStatusOf (routes: readonly BulkRoute[]): Promise<Record<string, BulkRouteStatus>> {
  return Object.fromEntries(await Promise.all(routes.map(async (route) => [route.route.id, await route.status()] as const)))
}
