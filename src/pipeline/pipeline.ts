// The one front door of proxied traffic: a request context made once, then the stages in order (match, admit, cache,
// forward with retries, cache store, answer); the record is published when the response closes (context.ts).
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { RouteConfig } from '../config/index.js'
import {
  asGatewayError, gatewayError, problemFor, retryAfterSeconds,
  type ForwardEnd, type ForwardOptions, type GatewayError, type Problem, type Topic
} from '../core/index.js'
import { openDetail } from '../proxy/index.js'
import { RouteTable } from '../routing/index.js'
import { RequestContext } from './context.js'
import type { RequestRecord } from './record.js'
import { requestIdFor } from './request-id.js'
import { refusalError, resolve, type Refusal } from './resolve.js'
import type { RouteRuntime } from './route-runtime.js'

const NO_OPTIONS: ForwardOptions = {}
/** What /actuator is on a port without the management plane. */
const NOT_FOUND: Refusal = { kind: 'not-found' }

/** Writes a refused Upgrade's problem on the raw socket; `err` is for the log. */
export type UpgradeRefusal = (err: GatewayError, problem: Problem, headers?: Record<string, string>) => void

/** The routes a pipeline serves: swapped whole, so a request sees one version of them from match to answer. */
interface Routes {
  readonly table: RouteTable<RouteConfig>
  readonly byId: ReadonlyMap<string, RouteRuntime>
}

export class Pipeline {
  #routes: Routes
  readonly #requestEnd: Topic<RequestRecord>
  #closing = false

  /** `requestEnd`: where every request's record is published once its response closes. */
  constructor (requestEnd: Topic<RequestRecord>) {
    this.#routes = routesOf([])
    this.#requestEnd = requestEnd
  }

  /** Serves these routes from the next request on; a request under way keeps the runtime it matched. */
  serve (runtimes: readonly RouteRuntime[]): void {
    this.#routes = routesOf(runtimes)
  }

  /** Shutdown began: every request from now on is refused (503, connection closed). */
  close (): void {
    this.#closing = true
  }

  /**
   * The listener of the gateway's port: the management plane (/actuator) goes to `management` (Fastify); every other
   * request through the stages. Without `management` (it has its own port), /actuator is not found here.
   */
  frontDoor (management: RequestListener | null): RequestListener {
    return (req, res) => { this.handle(req, res, management) }
  }

  /** The stages, in order; each one answers or goes on. */
  handle (req: IncomingMessage, res: ServerResponse, management: RequestListener | null): void {
    const routes = this.#routes
    const match = resolve(routes.table, req)
    if (match.kind === 'management' && management !== null) {
      management(req, res)
      return
    }
    const ctx = new RequestContext(req, res, this.#requestEnd)
    if (this.#closing) {
      // A request on a connection that was busy when shutdown began: answered, and the connection closed.
      ctx.problem('BW_ERR_GATEWAY_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance', ['connection', 'close'])
      return
    }
    // 1. match
    if (match.kind !== 'route') {
      refuse(ctx, match.kind === 'management' ? NOT_FOUND : match)
      return
    }
    const runtime = routes.byId.get(match.route.id) as RouteRuntime
    ctx.matched(runtime.route, match.upstreamPath)
    ctx.runsOn(runtime.requests)
    // A bulk route's write: read, checked and coalesced into a batch; taken while the breaker is open too (it waits in its batch's retries).
    if (runtime.bulk !== null && ctx.method === 'POST') {
      runtime.bulk.accept(ctx)
      return
    }
    // 2. admit: rate limits join here. The breaker admits within the upstream, once the cache had its say: a hit never touches its statistics.
    const answer = (end: ForwardEnd): void => { answerEnd(ctx, runtime, end) }
    // 3-5. cache lookup, forward with retries, cache store; 6. what was not relayed or answered from the cache is answered here.
    if (runtime.cache !== null) runtime.cache.serve(ctx, runtime.upstream, answer)
    else runtime.upstream.forward(ctx, NO_OPTIONS, answer)
  }

  /**
   * A WebSocket Upgrade (Node hands it over apart from requests, past the request checks: the caller makes them):
   * matched as a request is, then tunnelled, or refused through `refuse` with the problem to write on the socket.
   */
  upgrade (req: IncomingMessage, socket: Duplex, head: Buffer, refuse: UpgradeRefusal): void {
    const requestId = requestIdFor(req)
    const routes = this.#routes
    const match = resolve(routes.table, req)
    const refuseWith = (err: GatewayError, route?: string, headers?: Record<string, string>): void => {
      refuse(err, problemFor(err.code, err.message, { route, requestId }), headers)
    }
    if (match.kind === 'route') {
      const runtime = routes.byId.get(match.route.id) as RouteRuntime
      const route = runtime.route
      if (!route.websocket) {
        refuseWith(gatewayError('BW_ERR_ROUTE_UPGRADE_REFUSED', `route ${route.id} does not proxy Upgrade requests`), route.id)
        return
      }
      runtime.upstream.upgrade(req, socket, head, match.upstreamPath, requestId, (err) => { refuseWith(asGatewayError(err), route.id) })
      return
    }
    const refusal = match.kind === 'management' ? NOT_FOUND : match
    // RFC 9110 section 15.5.6: a 405 lists the methods the target does serve.
    if (refusal.kind === 'method-not-allowed') refuseWith(refusalError(refusal), refusal.route.id, { Allow: refusal.allow })
    else refuseWith(refusalError(refusal))
  }
}

function routesOf (runtimes: readonly RouteRuntime[]): Routes {
  return { table: new RouteTable(runtimes.map((runtime) => runtime.route)), byId: new Map(runtimes.map((runtime) => [runtime.route.id, runtime])) }
}

/** A target no route serves: 400, 404 or 405. */
function refuse (ctx: RequestContext, refusal: Refusal): void {
  const err = refusalError(refusal)
  if (refusal.kind === 'method-not-allowed') {
    // The path is the route's, only the method is not: its problem, record and metrics name it.
    ctx.matched(refusal.route, '')
    // RFC 9110 section 15.5.6: a 405 lists the methods the target does serve.
    ctx.problem(err.code, err.message, ['allow', refusal.allow])
    return
  }
  ctx.problem(err.code, err.message)
}

/** The answer stage: what a forward (or the cache in front of it) ended with and did not answer itself. */
function answerEnd (ctx: RequestContext, runtime: RouteRuntime, end: ForwardEnd): void {
  switch (end.kind) {
    case 'relayed':
    case 'abandoned':
      return
    case 'refused':
      runtime.upstream.countRefused(end.retried)
      answerRefusal(ctx, runtime, end.retryAfterMs)
      return
    case 'failed':
      // Once the status line is out the connection was cut: the only honest signal left.
      if (end.answered) return
      answerError(ctx, end.error)
      return
    case 'held':
      // Only the cache asks to hold answers back, and it answers them itself.
      answerError(ctx, gatewayError('BW_ERR_GATEWAY_INTERNAL', `an answer ${end.status} was held back with nobody to answer it`))
  }
}

/** The open breaker's answer: the route's fallback, or 503 problem+json; both say when to come back. */
function answerRefusal (ctx: RequestContext, runtime: RouteRuntime, retryAfterMs: number): void {
  const retryAfter = retryAfterSeconds(retryAfterMs)
  const fallback = runtime.route.breaker.fallback
  if (fallback !== null) {
    ctx.send(fallback.status, fallback.contentType, runtime.fallbackBody as Buffer, ['retry-after', retryAfter])
    return
  }
  ctx.problem('BW_ERR_UPSTREAM_CIRCUIT_OPEN', openDetail(runtime.route.id, retryAfter), ['retry-after', retryAfter])
}

/** A failure as the client's problem; what failed is in the record, for the log (the client's problem names only the route). */
function answerError (ctx: RequestContext, err: Error): void {
  const known = asGatewayError(err)
  if (known.statusCode >= 500) ctx.error = known
  ctx.problem(known.code, known.message)
}
