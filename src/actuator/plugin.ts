// The /actuator endpoints, with Spring Boot Actuator's paths and JSON shapes and Resilience4j's circuit-breaker endpoints.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { BulkRouteStatus } from '../bulk/index.js'
import { formatIssue, type ManagementConfig } from '../config/index.js'
import { gatewayError, isGatewayError, PROBLEM_CONTENT_TYPE, problemFor, type ErrorCode } from '../core/index.js'
import type { GatewayMetrics } from '../metrics/index.js'
import { BREAKER_COMMANDS, type BreakerCommand, type BreakerEvent, type BreakerSnapshot } from '../resilience/types.js'
import { BearerGuard } from './auth.js'
import { breakerDetails, circuitBreakersHealth, compareNames, healthDocument, overallStatus, type HealthComponent } from './health.js'
import type { AppInfo, BreakerLookup, ConfigActuator } from './types.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A Kubernetes probe: answered with its own status even while the gateway is shutting down. */
    probe?: boolean
  }
}

export const ACTUATOR_PREFIX = '/actuator'

export interface ActuatorOptions {
  readonly metrics: GatewayMetrics
  readonly breakers: BreakerLookup
  readonly management: Pick<ManagementConfig, 'token' | 'showDetails'>
  readonly info: AppInfo
  /** false once a graceful shutdown began: readiness turns DOWN. */
  readonly ready: () => boolean
  /** The response cache: its store's health and purges. Default: no cache. */
  readonly cache?: CacheActuator
  /** The bulk routes: their queues and dead letters. Default: none. */
  readonly bulk?: BulkActuator
  /** The config's generation and reloads (POST /actuator/refresh). Default: none. */
  readonly config?: ConfigActuator
}

/** What the actuator needs of the bulk routes. */
export interface BulkActuator {
  /** The ids of the routes with a `bulk:` block now. */
  readonly routes: () => readonly string[]
  readonly status: () => Promise<Record<string, BulkRouteStatus>>
  /** Puts route `routeId`'s dead letters back in its queue, oldest first; how many went. */
  readonly redrive: (routeId: string) => Promise<number>
}

/** What the actuator needs of the response cache. */
export interface CacheActuator {
  /** The ids of the routes that cache now. */
  readonly routes: () => readonly string[]
  /** The `redis` health component, or null when the cache is in memory (no component). */
  readonly health: () => HealthComponent | null
  /** Deletes what route `routeId` cached (only entries under `pathPrefix` when given); how many keys went. */
  readonly purge: (routeId: string, pathPrefix?: string) => Promise<number>
}

/** Spring Boot's health endpoint answers 503 for DOWN (management.endpoint.health.status.http-mapping defaults). */
const statusCode = (status: string): number => (status === 'DOWN' ? 503 : 200)

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Spring Boot Actuator's own media type: answered to a client that asks for it, as Spring does. */
export const ACTUATOR_V3_TYPE = 'application/vnd.spring-boot.actuator.v3+json'
/** The actuator's JSON media types (Spring's v3 type and plain JSON); bodies are small. */
const JSON_TYPES = ['application/json', ACTUATOR_V3_TYPE]
const BODY_LIMIT_BYTES = 16 * 1024

/** Registers every endpoint under /actuator, in its own encapsulated context. */
export async function actuatorPlugin (app: FastifyInstance, options: ActuatorOptions): Promise<void> {
  const { metrics, breakers, info, ready, cache, bulk, config } = options
  /** Components besides the circuit breakers: the cache's store, when it is Redis. */
  const components = (): Record<string, HealthComponent> => {
    const redis = cache?.health() ?? null
    return redis === null ? {} : { redis }
  }
  // The token and showDetails are read per request: a reload may change them.
  let guarded = { token: options.management.token, guard: new BearerGuard(options.management.token) }
  const guard = (): BearerGuard => {
    const { token } = options.management
    if (token !== guarded.token) guarded = { token, guard: new BearerGuard(token) }
    return guarded.guard
  }
  /** Spring's show-details: whether this request sees health components and the routes in the info. */
  const detailed = (request: FastifyRequest): boolean => {
    const { showDetails } = options.management
    return showDetails === 'always' || (showDetails === 'when-authorized' && guard().check(request.headers.authorization) === 'ok')
  }

  // The gateway streams bodies to upstreams unparsed; the actuator reads small JSON ones.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'string', bodyLimit: BODY_LIMIT_BYTES }, (_request, body, done) => {
    try {
      done(null, body === '' ? undefined : JSON.parse(body as string))
    } catch {
      done(gatewayError('BW_ERR_ACTUATOR_BAD_REQUEST', 'the body is not valid JSON'))
    }
  })

  // State-changing requests: checked before their body is read.
  app.addHook('onRequest', async (request, reply) => {
    if (SAFE_METHODS.has(request.method)) return
    const result = guard().check(request.headers.authorization)
    if (result === 'ok') return
    if (result === 'no-token-configured') {
      sendProblem(request, reply, 'BW_ERR_ACTUATOR_FORBIDDEN', 'set management.token to allow changes through the actuator')
      return await reply
    }
    // RFC 6750 section 3: the challenge, with invalid_token when a token was sent but is not the one.
    reply.header('www-authenticate', result === 'missing' ? 'Bearer realm="actuator"' : 'Bearer realm="actuator", error="invalid_token"')
    sendProblem(request, reply, 'BW_ERR_ACTUATOR_UNAUTHORIZED', result === 'missing'
      ? 'send Authorization: Bearer <management.token>'
      : 'the bearer token is not the configured management.token')
    return await reply
  })

  // JSON answers take Spring's v3 type when the client prefers it; problems stay application/problem+json.
  app.addHook('onSend', (request, reply, payload, done) => {
    const type = reply.getHeader('content-type')
    if (typeof type === 'string' && type.startsWith('application/json') && prefersActuatorV3(request.headers.accept)) {
      // JSON is UTF-8 by definition (RFC 8259 section 8.1); Spring sends this type without a charset.
      reply.header('content-type', ACTUATOR_V3_TYPE)
    }
    done(null, payload)
  })

  app.setErrorHandler((err, request, reply) => {
    if (isGatewayError(err)) {
      sendProblem(request, reply, err.code, err.message)
      return
    }
    const status = (err as { statusCode?: number }).statusCode
    if (status !== undefined && status >= 400 && status < 500) {
      sendProblem(request, reply, 'BW_ERR_ACTUATOR_BAD_REQUEST', (err as Error).message)
      return
    }
    request.log.error({ err }, 'actuator request failed')
    sendProblem(request, reply, 'BW_ERR_GATEWAY_INTERNAL', 'the gateway failed to handle this request')
  })

  const snapshots = (): BreakerSnapshot[] => snapshotsOf(breakers)

  app.get(ACTUATOR_PREFIX, async (request) => {
    const base = `${request.protocol}://${request.host}${ACTUATOR_PREFIX}`
    const link = (path: string): { href: string, templated: boolean } => ({ href: `${base}${path}`, templated: path.includes('{') })
    return {
      _links: {
        self: link(''),
        bulk: link('/bulk'),
        'bulk-route-redrive': link('/bulk/{route}/redrive'),
        circuitbreakers: link('/circuitbreakers'),
        'circuitbreakers-name': link('/circuitbreakers/{name}'),
        circuitbreakerevents: link('/circuitbreakerevents'),
        'circuitbreakerevents-name': link('/circuitbreakerevents/{name}'),
        health: link('/health'),
        'health-path': link('/health/{*path}'),
        info: link('/info'),
        prometheus: link('/prometheus'),
        refresh: link('/refresh')
      }
    }
  })

  app.get(`${ACTUATOR_PREFIX}/prometheus`, async (request, reply) => {
    const openMetrics = acceptsOpenMetrics(request.headers.accept)
    const text = await metrics.metrics(openMetrics)
    return await reply.type(metrics.contentType(openMetrics)).send(text)
  })

  app.get(`${ACTUATOR_PREFIX}/health`, { config: { probe: true } }, async (request, reply) => {
    if (!detailed(request)) {
      const status = overallStatus(ready())
      return await reply.code(statusCode(status)).send({ status })
    }
    const health = healthDocument(ready(), snapshots(), components())
    return await reply.code(statusCode(health.status)).send(health)
  })

  app.get<{ Params: { component: string } }>(`${ACTUATOR_PREFIX}/health/:component`, { config: { probe: true } }, async (request, reply) => {
    const { component } = request.params
    // Spring's probe groups: liveness holds livenessState, readiness holds readinessState.
    let answer: HealthComponent | undefined
    if (component === 'liveness') answer = { status: 'UP' }
    else if (component === 'readiness') answer = { status: ready() ? 'UP' : 'DOWN' }
    // As Spring answers a component it does not show: not found, whether it exists or not.
    else if (!detailed(request)) throw gatewayError('BW_ERR_ACTUATOR_NOT_FOUND', `health components are shown only to authorized requests (management.health.showDetails: ${options.management.showDetails})`)
    else if (component === 'circuitBreakers') answer = circuitBreakersHealth(snapshots())
    else answer = healthDocument(ready(), [], components()).components[component]
    if (answer === undefined) throw gatewayError('BW_ERR_ACTUATOR_NOT_FOUND', `no health component or group named ${component}`)
    return await reply.code(statusCode(answer.status)).send(answer)
  })

  app.get(`${ACTUATOR_PREFIX}/circuitbreakers`, async () => {
    const circuitBreakers: Record<string, unknown> = {}
    for (const snapshot of snapshots()) circuitBreakers[snapshot.name] = breakerDetails(snapshot)
    return { circuitBreakers }
  })

  app.post<{ Params: { name: string }, Body: unknown }>(`${ACTUATOR_PREFIX}/circuitbreakers/:name`, async (request) => {
    const { name } = request.params
    const breaker = breakers.get(name)
    if (breaker === undefined) throw gatewayError('BW_ERR_ACTUATOR_NOT_FOUND', `no circuit breaker named ${name}`)
    const command = updateStateOf(request.body)
    breaker.transition(command)
    return { circuitBreakerName: name, currentState: breaker.snapshot().state, message: `${name} state has been changed successfully` }
  })

  app.get(`${ACTUATOR_PREFIX}/circuitbreakerevents`, async () => {
    const events: BreakerEvent[] = []
    for (const breaker of breakers.all()) events.push(...breaker.events())
    return { circuitBreakerEvents: byCreationTime(events) }
  })

  app.get<{ Params: { name: string } }>(`${ACTUATOR_PREFIX}/circuitbreakerevents/:name`, async (request) => {
    const { name } = request.params
    const breaker = breakers.get(name)
    if (breaker === undefined) throw gatewayError('BW_ERR_ACTUATOR_NOT_FOUND', `no circuit breaker named ${name}`)
    return { circuitBreakerEvents: byCreationTime([...breaker.events()]) }
  })

  // RFC 9111 section 4.4 leaves purging to the cache; Varnish and nginx answer it with a count, so does this.
  app.delete<{ Querystring: { route?: string, prefix?: string } }>(`${ACTUATOR_PREFIX}/cache`, async (request) => {
    const { route, prefix } = request.query
    if (typeof route !== 'string' || route === '') throw gatewayError('BW_ERR_ACTUATOR_BAD_REQUEST', 'expected ?route=<route id>[&prefix=/path]')
    if (cache === undefined || !cache.routes().includes(route)) throw gatewayError('BW_ERR_ACTUATOR_NOT_FOUND', `no caching route named ${route}`)
    if (prefix !== undefined && (typeof prefix !== 'string' || !prefix.startsWith('/'))) {
      throw gatewayError('BW_ERR_ACTUATOR_BAD_REQUEST', `expected prefix to be a path starting with /, got ${JSON.stringify(prefix)}`)
    }
    const purged = await cache.purge(route, prefix)
    return { route, prefix: prefix ?? null, purged }
  })

  // Spring Cloud's endpoint: the config file read again and applied whole, or refused whole with every error.
  app.post(`${ACTUATOR_PREFIX}/refresh`, async (request, reply) => {
    if (config?.refresh == null) throw gatewayError('BW_ERR_ACTUATOR_NOT_FOUND', 'no config file to refresh from: this gateway was built from a config object')
    const result = await config.refresh()
    if ('refused' in result) {
      const err = result.refused
      const problem = problemFor('BW_ERR_CONFIG_INVALID',
        `${err.issues.length} error${err.issues.length === 1 ? '' : 's'} in ${err.file}; generation ${config.current().generation} keeps serving`, { requestId: request.id })
      const errors = err.issues.map(({ line, col, path, message }) => ({ line, col, path, message, text: formatIssue(err.file, { line, col, path, message }) }))
      return await reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify({ ...problem, errors }))
    }
    const { generation, changed, added, removed, restartRequired } = result.applied
    return restartRequired.length === 0 ? { generation, changed, added, removed } : { generation, changed, added, removed, restartRequired }
  })

  app.get(`${ACTUATOR_PREFIX}/bulk`, async () => ({ routes: bulk === undefined ? {} : await bulk.status() }))

  app.post<{ Params: { route: string } }>(`${ACTUATOR_PREFIX}/bulk/:route/redrive`, async (request) => {
    const { route } = request.params
    if (bulk === undefined || !bulk.routes().includes(route)) throw gatewayError('BW_ERR_ACTUATOR_NOT_FOUND', `no bulk route named ${route}`)
    return { route, redriven: await bulk.redrive(route) }
  })

  // Anything else under /actuator: a problem of the actuator's own, after the token check for state-changing methods.
  app.all(`${ACTUATOR_PREFIX}/*`, async (request) => {
    throw gatewayError('BW_ERR_ACTUATOR_NOT_FOUND', `no actuator endpoint ${request.method} ${request.url.split('?')[0] as string}`)
  })

  app.get(`${ACTUATOR_PREFIX}/info`, async (request) => {
    const build = {
      build: { name: info.name, version: info.version },
      node: { version: process.versions.node },
      ...(config === undefined ? {} : { config: config.current() })
    }
    // The routes tell how the gateway is laid out: shown as health details are.
    return detailed(request) ? { ...build, routes: info.routes.map((route) => ({ id: route.id, prefix: route.prefix })) } : build
  })
}

/** Every breaker's snapshot, sorted by name (as Resilience4j's endpoint lists them). */
export function snapshotsOf (breakers: BreakerLookup): BreakerSnapshot[] {
  return [...breakers.all()].map((breaker) => breaker.snapshot()).sort((a, b) => compareNames(a.name, b.name))
}

/** Stable, so events of one breaker keep their order within a millisecond. */
function byCreationTime (events: BreakerEvent[]): BreakerEvent[] {
  return events.sort((a, b) => compareNames(a.creationTime, b.creationTime))
}

function updateStateOf (body: unknown): BreakerCommand {
  const value = (body as { updateState?: unknown } | null | undefined)?.updateState
  if (typeof value === 'string' && (BREAKER_COMMANDS as readonly string[]).includes(value)) return value as BreakerCommand
  throw gatewayError('BW_ERR_ACTUATOR_BAD_REQUEST',
    `expected a JSON body {"updateState": ...} with one of ${BREAKER_COMMANDS.join(', ')}, got ${value === undefined ? 'none' : JSON.stringify(value)}`)
}

/**
 * Whether a scraper asked for OpenMetrics (Prometheus sends `application/openmetrics-text;version=1.0.0,...,text/plain;q=0.5`):
 * any media range of that type with a q above 0.
 */
export function acceptsOpenMetrics (accept: string | undefined): boolean {
  if (accept === undefined) return false
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';').map((part) => part.trim().toLowerCase())
    if (type !== 'application/openmetrics-text') continue
    const q = params.find((param) => param.startsWith('q='))
    if (q === undefined || Number(q.slice(2)) > 0) return true
  }
  return false
}

/**
 * Whether a client asked for Spring's v3 type over plain JSON (Spring's content negotiation among its producible
 * types): it names the v3 type with a q above 0 and above that of application/json (named or by a wildcard), or
 * equal and first. Anything else, no Accept included, keeps application/json.
 */
export function prefersActuatorV3 (accept: string | undefined): boolean {
  if (accept === undefined || !V3_MENTION.test(accept)) return false
  let v3: AcceptedRange | null = null
  let json: AcceptedRange | null = null
  let jsonSpecificity = 0
  const ranges = accept.split(',')
  for (let at = 0; at < ranges.length; at++) {
    const [type = '', ...params] = (ranges[at] as string).split(';').map((part) => part.trim().toLowerCase())
    const qParam = params.find((param) => param.startsWith('q='))
    const q = qParam === undefined ? 1 : Number(qParam.slice(2))
    if (type === ACTUATOR_V3_TYPE && v3 === null) v3 = { q, at }
    // RFC 9110 section 12.5.1: the most specific range that matches a type gives its q.
    const specificity = type === 'application/json' ? 3 : type === 'application/*' ? 2 : type === '*/*' ? 1 : 0
    if (specificity > jsonSpecificity) {
      json = { q, at }
      jsonSpecificity = specificity
    }
  }
  if (v3 === null || !(v3.q > 0)) return false
  return json === null || v3.q > json.q || (v3.q === json.q && v3.at < json.at)
}

interface AcceptedRange { readonly q: number, readonly at: number }

/** Most Accept headers never name the v3 type: they skip the parse. */
const V3_MENTION = /vnd\.spring-boot\.actuator\.v3/i

function sendProblem (request: FastifyRequest, reply: FastifyReply, code: ErrorCode, detail: string): void {
  const problem = problemFor(code, detail, { requestId: request.id })
  reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem))
}
