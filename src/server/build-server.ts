// buildServer(config): composes the gateway (routing, forwarding, problem answers, access log) on Fastify; never listens itself.
import { readFileSync } from 'node:fs'
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Duplex } from 'node:stream'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { actuatorPlugin, snapshotsOf, type ActuatorOptions } from '../actuator/index.js'
import { isReservedPath, type GatewayConfig, type RetryConfig, type RouteConfig } from '../config/index.js'
import {
  gatewayError, problemFor, rawProblemResponse,
  type ErrorCode, type GatewayError
} from '../core/index.js'
import { GatewayMetrics, NO_EXCEPTION, NOT_FOUND_URI } from '../metrics/index.js'
import { RouteForwarder, type RetryPolicy } from '../proxy/index.js'
import { backoffMs, BreakerRegistry, isRetryableMethod, parseRetryAfterSeconds, shouldRetry } from '../resilience/index.js'
import { hostName, resolveDotSegments, RouteTable, type RouteMatch } from '../routing/index.js'
import { AccessLog, accessLine, accessLineWriter } from './access-log.js'
import { buildBulkRoutes, instanceIdFrom, type BulkRoute } from './bulk-routes.js'
import { closeSilentConnections, createGatewayServer, headerRefusal, onClientError, trackConnections } from './http-server.js'
import { asGatewayError, replyProblem } from './problems.js'
import { requestIdFor } from './request-id.js'
import { buildRouteCaches, type CacheLookup, type PendingLookup, type RouteCache } from './response-cache.js'
import { isUpstreamNetworkFailure, upstreamFailureLog } from './upstream-failure-log.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The id of the route that matched, or null; the access log and problem bodies name it. */
    routeId: string | null
    /** The code of the problem the gateway answered with, or null: the `exception` label of the request metrics. */
    errorCode: ErrorCode | null
  }
  interface FastifyInstance {
    /** The gateway's metrics: the proxy path records each request with `metrics.observeRequest`. */
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
  /** The breakers' and the failure log's clock, in milliseconds (tests pass a fake one). Default: Date.now. */
  readonly now?: () => number
  /** This instance's name in the async bulk routes' consumer groups. Default: BREAKWATER_INSTANCE_ID, else the host name. */
  readonly instanceId?: string
}

export async function buildServer (config: GatewayConfig, deps: ServerDeps = {}): Promise<FastifyInstance> {
  const metrics = new GatewayMetrics({ breakers: () => snapshotsOf(breakers) })
  for (const route of config.routes) metrics.declareBreaker(route.id, route.retry.retries > 0)
  const breakers = new BreakerRegistry(config.routes, {
    now: deps.now,
    onTransition: (name, from, to, reason) => {
      app.log.warn({ route: name, from, to, reason }, `circuit breaker ${name}: ${from} -> ${to} (${reason})`)
    },
    onCall: (name, kind, durationMs) => { metrics.observeBreakerCall(name, kind, durationMs / 1000) },
    onNotPermitted: (name) => { metrics.countNotPermitted(name) }
  })
  const forwarders = new Map(config.routes.map((route) => [route.id, new RouteForwarder(route, {
    trustProxy: config.server.trustProxy,
    sendTimeoutMs: config.server.sendTimeoutMs,
    guard: breakers.get(route.id),
    retry: route.retry.retries === 0 ? undefined : retryPolicy(route.id, route.retry, metrics),
    answerProblem: (reply, code, detail) => { sendProblem(reply.request, reply, code, detail) }
  })]))
  const table = new RouteTable(config.routes)
  // Fastify's logger exists by the time a store fails: nothing is looked up before the server listens.
  const caches = buildRouteCaches(config, metrics, (details, message) => { app.log.warn(details, message) }, deps.now)
  let closing = false

  /** Metrics and the access-log line of an answer given before Fastify, as its hooks would record them. */
  const recordEarly = (req: IncomingMessage, route: RouteConfig, requestId: string, status: number, code: ErrorCode | null, started: number): void => {
    const elapsedMs = performance.now() - started
    metrics.observeRequest(route.id, req.method as string, route.prefix, status, elapsedMs / 1000, code ?? NO_EXCEPTION)
    if (config.server.accessLog) writeAccessLine(requestId, accessLine(route.id, req.method, req.url, status, elapsedMs, code))
  }
  /** The open breaker's answer before Fastify, when it refuses; false when the request goes on. */
  const refusedEarly = (req: IncomingMessage, res: ServerResponse, route: RouteConfig, started: number): boolean => {
    const refusal = (forwarders.get(route.id) as RouteForwarder).refuseEarly(req, res, requestIdFor)
    if (refusal === null) return false
    recordEarly(req, route, refusal.requestId, refusal.status, refusal.code, started)
    return true
  }
  /** A cache lookup's outcome before Fastify: what the cache answers alone is answered here, the rest goes on with its lookup. */
  const afterLookup = (req: IncomingMessage, res: ServerResponse, cache: RouteCache, match: RouteMatched, lookup: CacheLookup, started: number, next: () => void): void => {
    const route = match.route
    const answered = cache.answerEarly(req, res, lookup, forwarders.get(route.id) as RouteForwarder, match.upstreamPath, requestIdFor)
    if ('status' in answered) {
      recordEarly(req, route, answered.requestId, answered.status, null, started)
      return
    }
    ;(req as ResolvedRequest)[LOOKUP] = answered
    if (!refusedEarly(req, res, route, started)) next()
  }

  const frontDoor = (handler: RequestListener): RequestListener => (req, res) => {
    const match = resolve(table, req)
    ;(req as ResolvedRequest)[RESOLUTION] = match
    if (match.kind !== 'route' || closing) {
      handler(req, res)
      return
    }
    if (match.route.bulk !== null && req.method === 'POST') {
      // Taken while the breaker is open too: the write waits in its batch's retries until the upstream is back.
      const started = performance.now()
      const route = match.route
      const requestId = requestIdFor(req)
      ;(bulk.byRoute.get(route.id) as BulkRoute).accept({
        req, res, requestId, answered: (status, code) => { recordEarly(req, route, requestId, status, code, started) }
      })
      return
    }
    const cache = caches.byRoute.get(match.route.id)
    if (cache !== undefined && cache.looksUp(req)) {
      const started = performance.now()
      const next = (): void => { handler(req, res) }
      // An in-process store answers at once: no promise hop between the request and its HIT.
      const known = cache.lookupNow(req)
      if (known !== undefined) {
        afterLookup(req, res, cache, match, known, started, next)
        return
      }
      cache.lookup(req).then((lookup) => { afterLookup(req, res, cache, match, lookup, started, next) }).catch((err: unknown) => {
        app.log.error({ err, route: match.route.id }, 'cache lookup failed; forwarding')
        if (!res.headersSent) next()
      })
      return
    }
    if (!refusedEarly(req, res, match.route, performance.now())) handler(req, res)
  }

  const app = Fastify({
    ...(deps.logger === undefined ? { logger: { level: config.server.logLevel } } : { loggerInstance: deps.logger }),
    logController: new AccessLog(config.server.accessLog, (requestId, line) => { writeAccessLine(requestId, line) }),
    genReqId: requestIdFor,
    trustProxy: config.server.trustProxy,
    // Refused below as a problem, like every answer of the gateway's own.
    return503OnClosing: false,
    frameworkErrors: (err, request, reply) => {
      sendProblem(request, reply, 'BW_ERR_REQUEST_MALFORMED', `the request target is not valid: ${err.message}`)
    },
    serverFactory: (handler) => createGatewayServer(frontDoor(handler), config.server),
    clientErrorHandler: onClientError
  }) as unknown as FastifyInstance
  const writeAccessLine = accessLineWriter(app.log)
  const upstreamFailures = upstreamFailureLog(app.log, deps.now ?? Date.now)
  const bulk = buildBulkRoutes(config, {
    forwarders,
    metrics,
    log: app.log,
    instanceId: deps.instanceId ?? instanceIdFrom(process.env)
  })
  metrics.setBulkGaugeSource(bulk.gauges)

  app.decorateRequest('routeId', null)
  app.decorateRequest('errorCode', null)
  // Bodies are streamed to the upstream untouched: no parser may read them first.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    // Probes still answer, so readiness reports DOWN instead of a refusal.
    if (closing && request.routeOptions.config.probe !== true) {
      // A request on a connection that was busy when shutdown began: answered, and the connection closed.
      reply.header('connection', 'close')
      sendProblem(request, reply, 'BW_ERR_GATEWAY_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance')
    }
    done()
  })
  app.setErrorHandler((err, request, reply) => {
    const known = asGatewayError(err)
    // The upstream's address is in the log only: the client's problem names the route.
    if (isUpstreamNetworkFailure(known)) upstreamFailures.failed(known, request.routeId ?? '-', request.id)
    else if (known.statusCode >= 500) request.log.warn({ err: known.cause ?? err, route: request.routeId, upstream: known.upstream }, known.message)
    sendProblem(request, reply, known.code, known.message)
  })

  app.decorate('metrics', metrics)
  app.decorate('breakers', breakers)
  const prefixes = new Map(config.routes.map((route) => [route.id, route.prefix]))
  app.addHook('onResponse', (request, reply, done) => {
    const routeId = request.routeId
    // Spring's `uri` is the route template: the route's prefix, the gateway endpoint's path, or NOT_FOUND.
    const uri = routeId !== null ? prefixes.get(routeId) as string : request.is404 ? NOT_FOUND_URI : request.routeOptions.url ?? NOT_FOUND_URI
    metrics.observeRequest(routeId, request.method, uri, reply.statusCode, reply.elapsedTime / 1000, request.errorCode ?? NO_EXCEPTION)
    done()
  })
  // Every request that no gateway endpoint takes is proxied: Fastify's default route is the proxy, so any method
  // reaches it and find-my-way never parses a wildcard it would not use.
  app.setNotFoundHandler((request, reply) => {
    // Resolved by the front door, unless the request was injected past the server (light-my-request).
    const match = (request.raw as ResolvedRequest)[RESOLUTION] ?? resolve(table, request.raw)
    if (match.kind !== 'route') {
      refuseMatch(request, reply, match)
      return
    }
    request.routeId = match.route.id
    const bulkRoute = bulk.byRoute.get(match.route.id)
    if (bulkRoute !== undefined && request.method === 'POST') {
      // Only a request injected past the front door gets here: Fastify's onResponse hook records it.
      reply.hijack()
      bulkRoute.accept({ req: request.raw, res: reply.raw, requestId: request.id, answered: () => {} })
      return
    }
    const forwarder = forwarders.get(match.route.id) as RouteForwarder
    const cache = caches.byRoute.get(match.route.id)
    if (cache === undefined) forwarder.forward(request, reply, match.upstreamPath)
    else cache.forward(request, reply, forwarder, match.upstreamPath, (request.raw as ResolvedRequest)[LOOKUP] ?? null)
  })

  if (config.routes.some((route) => route.websocket)) {
    app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const requestId = requestIdFor(req)
      const refuse = (err: GatewayError, route?: string, headers?: Record<string, string>): void => {
        app.log.info({ requestId, url: req.url, code: err.code, route, upstream: err.upstream }, `upgrade refused: ${err.message}`)
        socket.end(rawProblemResponse(problemFor(err.code, err.message, { route, requestId }), headers))
      }
      // Node hands an Upgrade request here rather than to the server's request listener and its header checks.
      const malformed = headerRefusal(req, config.server.maxHeaders)
      if (malformed !== null) {
        refuse(gatewayError(malformed.code, malformed.detail))
        return
      }
      const match = resolve(table, req)
      if (match.kind === 'route' && match.route.websocket) {
        (forwarders.get(match.route.id) as RouteForwarder).upgrade(req, socket, head, match.upstreamPath, requestId, (err) => { refuse(asGatewayError(err), match.route.id) })
      } else if (match.kind === 'route') {
        refuse(gatewayError('BW_ERR_ROUTE_UPGRADE_REFUSED', `route ${match.route.id} does not proxy Upgrade requests`), match.route.id)
      } else {
        // RFC 9110 section 15.5.6: a 405 lists the methods the target does serve.
        if (match.kind === 'method-not-allowed') refuse(matchError(match), match.route.id, { Allow: match.allow })
        else refuse(matchError(match))
      }
    })
  }

  // The actuator: on the main port, or on its own listener with management.port (the main port then has no /actuator).
  const actuator: ActuatorOptions = {
    metrics,
    breakers,
    management: config.management,
    info: { name: PACKAGE.name, version: PACKAGE.version, routes: config.routes.map(({ id, prefix }) => ({ id, prefix })) },
    ready: () => !closing,
    cache: { routes: [...caches.byRoute.keys()], health: caches.health, purge: caches.purge },
    bulk: { routes: [...bulk.byRoute.keys()], status: bulk.status, redrive: bulk.redrive }
  }
  app.addHook('onReady', async () => {
    await Promise.all([caches.connected(), bulk.connected()])
    bulk.start()
  })
  const { host: managementHost, port: managementPort } = config.management
  if (managementPort === null) {
    app.decorate('managementServer', null)
    await app.register(actuatorPlugin, actuator)
  } else {
    const management = buildManagementServer(config, app.log, actuator)
    app.decorate('managementServer', management)
    // Bound when the gateway starts, so a taken management port fails the start; closed after the main port drained.
    app.addHook('onReady', async () => { await management.listen({ host: managementHost, port: managementPort }) })
    app.addHook('onClose', async () => { await management.close() })
  }

  const connections = trackConnections(app.server)
  // server.close() ends only the connections idle at that moment: a keep-alive connection whose response finishes
  // later would hold close() until its keep-alive timeout (72 s), so idle connections are reaped as they appear.
  let reaper: NodeJS.Timeout | undefined
  app.addHook('preClose', (done) => {
    closing = true
    for (const forwarder of forwarders.values()) forwarder.endTunnels()
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
    upstreamFailures.close()
    // Every accepted item is answered before the upstream pools close under its batch; a batch still in flight at the
    // deadline is aborted (its items stay in the stream for the next start or another instance).
    const unsettled = await bulk.close(config.server.shutdownTimeoutMs)
    await Promise.all([...forwarders].map(async ([id, forwarder]) => { await (unsettled.has(id) ? forwarder.destroy() : forwarder.close()) }))
    await caches.close()
  })
  return app
}

/** How often a closing gateway ends the keep-alive connections that went idle since the last look. */
const IDLE_REAP_INTERVAL_MS = 50

const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string, version: string }

function buildManagementServer (config: GatewayConfig, logger: FastifyBaseLogger, actuator: ActuatorOptions): FastifyInstance {
  const management = Fastify({
    loggerInstance: logger,
    // Scrapes and probes every few seconds would drown the access log of the traffic that matters.
    logController: new AccessLog(false, () => {}),
    genReqId: requestIdFor,
    trustProxy: config.server.trustProxy,
    serverFactory: (handler) => createGatewayServer(handler, config.server),
    clientErrorHandler: onClientError
  }) as unknown as FastifyInstance
  management.register(actuatorPlugin, actuator)
  management.setNotFoundHandler((request, reply) => {
    sendProblem(request, reply, 'BW_ERR_ACTUATOR_NOT_FOUND', 'no actuator endpoint at this path')
  })
  return management
}

type Resolution = RouteMatch<GatewayConfig['routes'][number]> | { readonly kind: 'bad-path', readonly reason: string }

type RouteMatched = Extract<Resolution, { kind: 'route' }>

/** Where the front door leaves a request's resolution, and its cache lookup, for the proxy handler. */
const RESOLUTION = Symbol('breakwater.resolution')
const LOOKUP = Symbol('breakwater.cache-lookup')
type ResolvedRequest = IncomingMessage & { [RESOLUTION]?: Resolution, [LOOKUP]?: PendingLookup }

/** Path resolution and route match for a raw request: the path is resolved once and the same form is forwarded. */
function resolve (table: RouteTable<GatewayConfig['routes'][number]>, req: IncomingMessage): Resolution {
  const url = req.url as string
  if (url[0] !== '/') return { kind: 'bad-path', reason: 'the request target is not a path (origin-form, RFC 9112 section 3.2.1)' }
  const query = url.indexOf('?')
  const path = resolveDotSegments(query === -1 ? url : url.slice(0, query))
  if (path === null) return { kind: 'bad-path', reason: 'the path climbs above the root with ..' }
  // The gateway's own prefix is never proxied, whatever a catch-all route or a dot segment would make of it.
  if (isReservedPath(path)) return { kind: 'not-found' }
  const match = table.match(req.method as string, hostName(req.headers.host), path)
  if (match.kind !== 'route' || query === -1) return match
  return { ...match, upstreamPath: match.upstreamPath + url.slice(query) }
}

function matchError (match: Exclude<Resolution, { kind: 'route' }>): GatewayError {
  switch (match.kind) {
    case 'bad-path': return gatewayError('BW_ERR_REQUEST_BAD_PATH', match.reason)
    case 'not-found': return gatewayError('BW_ERR_ROUTE_NOT_FOUND', 'no route matches this host and path')
    case 'method-not-allowed': return gatewayError('BW_ERR_ROUTE_METHOD_NOT_ALLOWED', `this path serves ${match.allow}`)
  }
}

function refuseMatch (request: FastifyRequest, reply: FastifyReply, match: Exclude<Resolution, { kind: 'route' }>): void {
  if (match.kind === 'method-not-allowed') {
    // RFC 9110 section 15.5.6: a 405 lists the methods the target does serve.
    reply.header('allow', match.allow)
    // The path is the route's, only the method is not: its problem, access line and metrics name it.
    request.routeId = match.route.id
  }
  const err = matchError(match)
  sendProblem(request, reply, err.code, err.message)
}

function sendProblem (request: FastifyRequest, reply: FastifyReply, code: ErrorCode, detail: string): void {
  request.errorCode = code
  replyProblem(reply, problemFor(code, detail, { route: request.routeId ?? undefined, requestId: request.id }))
}

/** The route's retry policy for the proxy: resilience/'s rules, counted in resilience4j_retry_calls_total. */
function retryPolicy (name: string, config: RetryConfig, metrics: GatewayMetrics): RetryPolicy {
  return {
    retries: config.retries,
    appliesTo: isRetryableMethod,
    retryable: (failure) => shouldRetry(config, failure),
    delayMs: (attempt, retryAfter) => backoffMs(config, attempt, Math.random, parseRetryAfterSeconds(retryAfter)),
    onOutcome: (succeeded, retried) => {
      metrics.countRetry(name, `${succeeded ? 'successful' : 'failed'}_${retried ? 'with' : 'without'}_retry`)
    }
  }
}
