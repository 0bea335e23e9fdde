// The config file's schema (validated with ajv, documented in the README from these descriptions) and the loaded config's types.
import { Type, type Static, type TString } from '@sinclair/typebox'
import { DURATION_PATTERN, SIZE_PATTERN } from './units.js'

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'] as const
export type HttpMethod = typeof HTTP_METHODS[number]

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]

/** The route id doubles as a metric label and a breaker name, so it stays a plain slug. */
export const ROUTE_ID_PATTERN = '^[a-z0-9][a-z0-9_-]*$'

/** Every path under this prefix belongs to the gateway's own endpoints. */
export const RESERVED_PREFIX = '/actuator'

/** Built-in defaults, with units: what a config gets for every key it leaves out. */
export const DEFAULT_SERVER_HOST = '0.0.0.0'
export const DEFAULT_SERVER_PORT = 8080
export const DEFAULT_BODY_LIMIT = '1mb'
export const DEFAULT_SHUTDOWN_TIMEOUT = '10s'
export const DEFAULT_MAX_HEADERS = 100
export const DEFAULT_HEADERS_TIMEOUT = '30s'
export const DEFAULT_LOG_LEVEL: LogLevel = 'info'
export const DEFAULT_ROUTE_TIMEOUT = '5s'

// `x-expected` says, in words, what a value must look like; config errors quote it as "expected <x-expected>, got <value>".
const duration = (description: string, defaultValue?: string): TString =>
  Type.String({ pattern: DURATION_PATTERN, description, default: defaultValue, 'x-expected': 'a duration like 5s' })
const size = (description: string, defaultValue?: string): TString =>
  Type.String({ pattern: SIZE_PATTERN, description, default: defaultValue, 'x-expected': 'a size like 1mb' })

const Method = Type.Unsafe<HttpMethod>({ type: 'string', enum: [...HTTP_METHODS] })

/** Route keys that may also be set once for all routes under `defaults:`. */
const routePolicy = {
  methods: Type.Optional(Type.Array(Method, { minItems: 1, uniqueItems: true, description: 'Methods this route serves; others get 405 with `Allow`. Default: all methods' })),
  host: Type.Optional(Type.String({ minLength: 1, description: 'Serve only requests whose Host header is this name (port ignored). Default: any host' })),
  upstream: Type.Optional(Type.Union([
    Type.String({ minLength: 1 }),
    Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })
  ], {
    description: 'Upstream origin (`http://host:port`), or a list of them: round robin, one keep-alive pool each. Required on every route, or once under `defaults`',
    'x-expected': 'an http(s) URL or a list of them'
  })),
  rewritePrefix: Type.Optional(Type.String({ description: 'Replaces the matched prefix in the forwarded path; `""` strips it. Default: the path is forwarded unchanged' })),
  timeout: Type.Optional(duration('Upstream response timeout (connect, then each wait for headers or body data): past it, 504 and the upstream request is aborted', DEFAULT_ROUTE_TIMEOUT)),
  headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Request headers added upstream' })),
  websocket: Type.Optional(Type.Boolean({ description: 'Proxy WebSocket Upgrade requests on this prefix', default: false })),
  bodyLimit: Type.Optional(size('Largest request body on this route; larger ones get 413. Default: `server.bodyLimit`'))
}

const Route = Type.Object({
  id: Type.String({ pattern: ROUTE_ID_PATTERN, description: 'Unique route id: the metric label and breaker name', 'x-expected': 'an id like catalog (lower case letters, digits, - and _)' }),
  prefix: Type.String({ pattern: '^/', description: 'Path prefix, matched on segment boundaries; the longest matching prefix wins', 'x-expected': 'a path starting with /' }),
  ...routePolicy
}, { additionalProperties: false })

const Defaults = Type.Object(routePolicy, { additionalProperties: false, description: 'Route keys applied to every route that does not set them' })

const Server = Type.Object({
  host: Type.Optional(Type.String({ minLength: 1, description: 'Address to listen on', default: DEFAULT_SERVER_HOST })),
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Port to listen on; 0 picks a free one and logs it', default: DEFAULT_SERVER_PORT, 'x-expected': 'a port number from 0 to 65535' })),
  bodyLimit: Type.Optional(size('Largest request body; larger ones get 413', DEFAULT_BODY_LIMIT)),
  shutdownTimeout: Type.Optional(duration('On SIGTERM/SIGINT, how long in-flight requests may take to finish', DEFAULT_SHUTDOWN_TIMEOUT)),
  trustProxy: Type.Optional(Type.Boolean({ description: 'Trust X-Forwarded-* from clients (the gateway sits behind another proxy); otherwise X-Forwarded-Host and -Proto are replaced', default: false })),
  maxHeaders: Type.Optional(Type.Integer({ minimum: 1, description: 'Most header fields a request may carry; more get 431', default: DEFAULT_MAX_HEADERS })),
  headersTimeout: Type.Optional(duration('A client that has not sent its request headers in this time is disconnected (slowloris)', DEFAULT_HEADERS_TIMEOUT)),
  logLevel: Type.Optional(Type.Unsafe<LogLevel>({ type: 'string', enum: [...LOG_LEVELS], description: 'pino log level', default: DEFAULT_LOG_LEVEL })),
  accessLog: Type.Optional(Type.Boolean({ description: 'Log one line per request (route, status, duration, request id)', default: true }))
}, { additionalProperties: false })

export const ConfigSchema = Type.Object({
  server: Type.Optional(Server),
  defaults: Type.Optional(Defaults),
  routes: Type.Optional(Type.Array(Route, { description: 'The routes, matched by longest prefix' }))
}, { additionalProperties: false })

/** The config file as written, once it has passed the schema. */
export type ConfigFile = Static<typeof ConfigSchema>

export interface ServerConfig {
  readonly host: string
  readonly port: number
  readonly bodyLimitBytes: number
  readonly shutdownTimeoutMs: number
  readonly trustProxy: boolean
  readonly maxHeaders: number
  readonly headersTimeoutMs: number
  readonly logLevel: LogLevel
  readonly accessLog: boolean
}

export interface RouteConfig {
  readonly id: string
  readonly prefix: string
  /** null: every method. */
  readonly methods: readonly HttpMethod[] | null
  /** Lower-cased host name without port; null: any host. */
  readonly host: string | null
  /** Upstream origins, like `http://127.0.0.1:9001`. */
  readonly upstreams: readonly string[]
  /** null: the path is forwarded unchanged. */
  readonly rewritePrefix: string | null
  readonly timeoutMs: number
  readonly headers: Readonly<Record<string, string>>
  readonly websocket: boolean
  readonly bodyLimitBytes: number
}

export interface GatewayConfig {
  /** Where the config came from, for messages. */
  readonly source: string
  readonly server: ServerConfig
  readonly routes: readonly RouteConfig[]
}
