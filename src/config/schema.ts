// The config file's schema (validated with ajv, documented in the README from these descriptions) and the loaded config's types.
import { Type, type Static, type TNumber, type TObject, type TOptional, type TString } from '@sinclair/typebox'
import { DURATION_PATTERN, SIZE_PATTERN } from './units.js'

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'] as const
export type HttpMethod = typeof HTTP_METHODS[number]

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]
export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const
export type TlsVersion = typeof TLS_VERSIONS[number]
export const DEFAULT_TLS_MIN_VERSION: TlsVersion = 'TLSv1.2'

/** The route id doubles as a metric label and a breaker name, so it stays a plain slug. */
export const ROUTE_ID_PATTERN = '^[a-z0-9][a-z0-9_-]*$'

/** Every path under this prefix belongs to the gateway's own endpoints. */
export const RESERVED_PREFIX = '/actuator'

/** Whether a resolved path lies under RESERVED_PREFIX, on a segment boundary (`/actuatorx` does not). */
export function isReservedPath (path: string): boolean {
  return path.startsWith(RESERVED_PREFIX) && (path.length === RESERVED_PREFIX.length || path[RESERVED_PREFIX.length] === '/')
}

/** Built-in defaults, with units: what a config gets for every key it leaves out. */
export const DEFAULT_SERVER_HOST = '0.0.0.0'
export const DEFAULT_SERVER_PORT = 8080
export const DEFAULT_BODY_LIMIT = '1mb'
export const DEFAULT_SHUTDOWN_TIMEOUT = '10s'
export const DEFAULT_MAX_HEADERS = 100
export const DEFAULT_HEADERS_TIMEOUT = '30s'
/** nginx's send_timeout default. */
export const DEFAULT_SEND_TIMEOUT = '60s'
export const DEFAULT_LOG_LEVEL: LogLevel = 'info'
export const DEFAULT_ROUTE_TIMEOUT = '5s'
export const DEFAULT_FAILURE_THRESHOLD = 5
export const DEFAULT_SLIDING_WINDOW = '10s'
export const DEFAULT_MINIMUM_CALLS = 20
export const DEFAULT_SLOW_CALL_THRESHOLD = '60s'
export const DEFAULT_SLOW_CALL_RATE_THRESHOLD = 100
export const DEFAULT_RECOVERY_TIMEOUT = '30s'
export const DEFAULT_HALF_OPEN_CALLS = 1
export const DEFAULT_FAILURE_STATUSES = [500, 502, 503, 504]
export const DEFAULT_FALLBACK_CONTENT_TYPE = 'application/json'
export const DEFAULT_RETRIES = 2
export const DEFAULT_RETRY_BACKOFF = '100ms'
export const DEFAULT_RETRY_MAX_BACKOFF = '2s'
export const DEFAULT_RETRY_ON = [502, 503, 504, 'connect', 'timeout'] as const
export const DEFAULT_REDIS_KEY_PREFIX = 'bw:'
export const DEFAULT_REDIS_CONNECT_TIMEOUT = '1s'
export const DEFAULT_REDIS_COMMAND_TIMEOUT = '100ms'
export const DEFAULT_CACHE_MAX_OBJECT_SIZE = '1mb'
export const DEFAULT_CACHE_MAX_VARIANTS = 16
/** RFC 9213's targeted field for CDNs and other shared caches. */
export const DEFAULT_CACHE_TARGETED_FIELD = 'CDN-Cache-Control'
export const DEFAULT_MEMORY_TIER_ENTRIES = 10_000
export const DEFAULT_MEMORY_TIER_TTL = '1s'
export const DEFAULT_BULK_BATCH_SIZE = 1000
export const DEFAULT_BULK_MAX_BATCH_BYTES = '5mb'
export const DEFAULT_BULK_MAX_WAIT = '50ms'
export const DEFAULT_BULK_FORMAT: BulkFormatName = 'json-array'
export const DEFAULT_BULK_MODE: BulkMode = 'sync'
export const DEFAULT_BULK_CONCURRENCY = 2
export const DEFAULT_BULK_MAX_PENDING = 100_000
export const DEFAULT_BULK_RETRIES = 5
export const DEFAULT_BULK_RETRY_BACKOFF = '100ms'
export const DEFAULT_BULK_RETRY_MAX_BACKOFF = '5s'
export const DEFAULT_BULK_CLAIM_AFTER = '30s'
export const DEFAULT_AUTOSCALER_MODE: AutoscalerMode = 'recommend'
export const DEFAULT_AUTOSCALER_PORT = 9464
export const DEFAULT_AUTOSCALER_INTERVAL = '15s'
export const DEFAULT_AUTOSCALER_WINDOW = '2m'
export const DEFAULT_AUTOSCALER_COOLDOWN = '5m'
/** Percentages: either one above its threshold on the busiest master scales out. */
export const DEFAULT_SCALE_OUT = { cpu: 80, memory: 75 } as const
/** Percentages: both below their thresholds on the cluster average scales in. */
export const DEFAULT_SCALE_IN = { cpu: 30, memory: 50 } as const
/** redis-cli --cluster create refuses fewer than 3 masters: a majority must survive one failure. */
export const MIN_CLUSTER_MASTERS = 3
export const DEFAULT_MIN_MASTERS = 3
export const DEFAULT_MAX_MASTERS = 9
export const DEFAULT_MIGRATION_PIPELINE = 100
export const DEFAULT_MIGRATION_TIMEOUT = '5s'
/** Entries the embedded store (no `redis:` block) holds across all routes before it evicts the least recently used. */
export const DEFAULT_MEMORY_STORE_ENTRIES = 10_000
/** The environment variable that configures a standalone Redis when the file has no `redis:` block. */
export const REDIS_URL_ENV = 'BREAKWATER_REDIS_URL'
/** The environment variable naming this gateway instance: each async bulk route's consumer and the autoscaler's lease holder (default: the host name). */
export const INSTANCE_ID_ENV = 'BREAKWATER_INSTANCE_ID'

// `x-expected` says, in words, what a value must look like; config errors quote it as "expected <x-expected>, got <value>".
const duration = (description: string, defaultValue?: string): TString =>
  Type.String({ pattern: DURATION_PATTERN, description, default: defaultValue, 'x-expected': 'a duration like 5s' })
const size = (description: string, defaultValue?: string): TString =>
  Type.String({ pattern: SIZE_PATTERN, description, default: defaultValue, 'x-expected': 'a size like 1mb' })

const Method = Type.Unsafe<HttpMethod>({ type: 'string', enum: [...HTTP_METHODS] })

export const BREAKER_MODES = ['enforce', 'observe', 'off'] as const
export type BreakerMode = typeof BREAKER_MODES[number]
/** Failures that are not an HTTP status: the connection could not be made or was reset, or the route's timeout passed. */
export const RETRY_CONDITIONS = ['connect', 'timeout'] as const
export type RetryCondition = typeof RETRY_CONDITIONS[number]
/** How a batch's items are put in one body: a JSON array, or one JSON text per line (application/x-ndjson). */
export const BULK_FORMATS = ['json-array', 'ndjson'] as const
export type BulkFormatName = typeof BULK_FORMATS[number]
/** `sync`: each client waits for its own item's result; `async`: 202 once the item is durably queued. */
export const BULK_MODES = ['sync', 'async'] as const
export type BulkMode = typeof BULK_MODES[number]
/** `recommend`: measure, decide, log and export, change nothing; `apply`: act on the decisions. */
/** Spring Boot's management.endpoint.health.show-details values, in the gateway's YAML spelling. */
export const SHOW_DETAILS = ['never', 'when-authorized', 'always'] as const
export type ShowDetails = typeof SHOW_DETAILS[number]
export const DEFAULT_SHOW_DETAILS: ShowDetails = 'when-authorized'

export const AUTOSCALER_MODES = ['recommend', 'apply'] as const
export type AutoscalerMode = typeof AUTOSCALER_MODES[number]

const percent = (description: string, defaultValue?: number): TNumber =>
  Type.Number({ exclusiveMinimum: 0, maximum: 100, description, default: defaultValue, 'x-expected': 'a percentage above 0, at most 100' })
const ServerErrorStatus = Type.Integer({ minimum: 500, maximum: 599, 'x-expected': 'a 5xx status' })

const Breaker = Type.Object({
  mode: Type.Optional(Type.Unsafe<BreakerMode>({ type: 'string', enum: [...BREAKER_MODES], default: 'enforce', description: '`enforce` rejects while open; `observe` (Resilience4j METRICS_ONLY) counts and reports but never rejects; `off` (DISABLED)' })),
  failureThreshold: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_FAILURE_THRESHOLD, description: 'Consecutive failures that open the breaker' })),
  failureRateThreshold: Type.Optional(percent('Failure rate (%) over `slidingWindow` that opens the breaker, once `minimumCalls` were seen. Default: off')),
  slidingWindow: Type.Optional(duration('The time window the failure and slow-call rates are measured over', DEFAULT_SLIDING_WINDOW)),
  minimumCalls: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_MINIMUM_CALLS, description: 'Calls the window must hold before its rates count' })),
  slowCallThreshold: Type.Optional(duration('A call slower than this counts as slow', DEFAULT_SLOW_CALL_THRESHOLD)),
  slowCallRateThreshold: Type.Optional(percent('Slow-call rate (%) over the window that opens the breaker; 100 is off in effect', DEFAULT_SLOW_CALL_RATE_THRESHOLD)),
  recoveryTimeout: Type.Optional(duration('How long the breaker stays open before it lets trial calls through (HALF_OPEN)', DEFAULT_RECOVERY_TIMEOUT)),
  recoveryBackoff: Type.Optional(Type.Object({
    multiplier: Type.Number({ minimum: 1, description: 'Each re-open waits this many times longer' }),
    max: duration('The longest wait')
  }, { additionalProperties: false, description: 'Each re-open from HALF_OPEN waits longer; reset once the breaker closes. Default: a fixed `recoveryTimeout`' })),
  halfOpenCalls: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_HALF_OPEN_CALLS, description: 'Trial calls let through in HALF_OPEN: all succeed -> CLOSED, any fails -> OPEN' })),
  failureStatuses: Type.Optional(Type.Array(ServerErrorStatus, { minItems: 1, uniqueItems: true, default: DEFAULT_FAILURE_STATUSES, description: 'Upstream statuses that count as failures (4xx never do)' })),
  fallback: Type.Optional(Type.Object({
    status: Type.Integer({ minimum: 200, maximum: 599, 'x-expected': 'an HTTP status' }),
    contentType: Type.Optional(Type.String({ minLength: 1, default: DEFAULT_FALLBACK_CONTENT_TYPE })),
    body: Type.Optional(Type.String())
  }, { additionalProperties: false, description: 'The answer while open, instead of 503 problem+json' }))
}, { additionalProperties: false, description: 'The route\'s circuit breaker (Resilience4j semantics)' })

const Retry = Type.Object({
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, default: DEFAULT_RETRIES, description: 'Extra attempts after the first' })),
  backoff: Type.Optional(duration('Base of the exponential backoff, with full jitter', DEFAULT_RETRY_BACKOFF)),
  maxBackoff: Type.Optional(duration('Longest wait between attempts; also caps an honoured Retry-After', DEFAULT_RETRY_MAX_BACKOFF)),
  on: Type.Optional(Type.Array(Type.Union([ServerErrorStatus, Type.Unsafe<RetryCondition>({ type: 'string', enum: [...RETRY_CONDITIONS] })], { 'x-expected': 'a 5xx status, connect or timeout' }), { minItems: 1, uniqueItems: true, description: 'What is retried: 5xx statuses, `connect` (refused or reset), `timeout`. Default: 502, 503, 504, connect, timeout' }))
}, { additionalProperties: false, description: 'Retries for idempotent methods (GET HEAD OPTIONS PUT DELETE) without a streamed body, each attempt through the breaker' })

const Cache = Type.Object({
  ttl: Type.Optional(duration('Freshness when the upstream states none; its Cache-Control and Expires win. Default: only what RFC 9111 allows is stored (explicit freshness, validators, heuristics)')),
  maxObjectSize: Type.Optional(size('Larger responses stream through uncached', DEFAULT_CACHE_MAX_OBJECT_SIZE)),
  staleWhileRevalidate: Type.Optional(duration('Serve a stale entry at once and refresh it in the background for this long past its freshness (the upstream\'s own stale-while-revalidate also counts). Default: only the upstream\'s')),
  staleIfError: Type.Optional(duration('Serve a stale entry for this long past its freshness when the upstream fails or the breaker is open (the upstream\'s own stale-if-error also counts). Default: only the upstream\'s')),
  vary: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { uniqueItems: true, description: 'Request headers added to the cache key, on top of the response\'s Vary' })),
  maxVariants: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_CACHE_MAX_VARIANTS, description: 'Variants kept per URL, one per value of the fields the response\'s Vary names; storing one more drops the oldest' })),
  targetedField: Type.Optional(Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$', default: DEFAULT_CACHE_TARGETED_FIELD, description: 'A response field that, when valid, replaces Cache-Control and Expires for this cache (RFC 9213); CDN-Cache-Control is honoured after it. Passed on to clients unchanged', 'x-expected': 'a header field name like Breakwater-Cache-Control' })),
  memory: Type.Optional(Type.Object({
    maxEntries: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_MEMORY_TIER_ENTRIES, description: 'Entries kept in this process' })),
    ttl: Type.Optional(duration('How long an entry is served from this process before Redis is asked again', DEFAULT_MEMORY_TIER_TTL))
  }, { additionalProperties: false, description: 'An in-process tier in front of Redis (only with `redis:`). Default: none' }))
}, { additionalProperties: false, description: 'Cache GET and HEAD answers as a shared cache (RFC 9111)' })

/** A request-target path with any query: printable ASCII without spaces or `#` (undici refuses the rest). */
const BULK_PATH_PATTERN = '^/[\\x21\\x22\\x24-\\x7e]*$'
/** Unlike other durations, a zero `maxWait` is useful: each item goes as soon as a batch slot is free. */
const ZERO_OR_DURATION_PATTERN = '^(0|[1-9][0-9]*)(ms|s|m|h)$'

const BulkRetry = Type.Object({
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 20, default: DEFAULT_BULK_RETRIES, description: 'Extra attempts at a batch after the first', 'x-expected': 'an integer from 0 to 20' })),
  backoff: Type.Optional(duration('Base of the exponential backoff between attempts, with full jitter', DEFAULT_BULK_RETRY_BACKOFF)),
  maxBackoff: Type.Optional(duration('Longest wait between attempts; at least `backoff`', DEFAULT_BULK_RETRY_MAX_BACKOFF))
}, { additionalProperties: false, description: 'Retries of a batch left unanswered (5xx, timeout, connect error, open breaker), each sent with the same X-Bulk-Batch-Id so the upstream can de-duplicate' })

const Bulk = Type.Object({
  path: Type.String({ pattern: BULK_PATH_PATTERN, description: 'The upstream\'s bulk endpoint, with any query, sent as is (no `rewritePrefix`)', 'x-expected': 'a path like /api/events/_bulk (printable ASCII, no spaces or #)' }),
  batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, default: DEFAULT_BULK_BATCH_SIZE, description: 'A batch goes as soon as this many items are pending', 'x-expected': 'an integer from 1 to 100000' })),
  maxBatchBytes: Type.Optional(size('A batch goes as soon as its items reach this many bytes; a larger item goes alone', DEFAULT_BULK_MAX_BATCH_BYTES)),
  maxWait: Type.Optional(Type.String({ pattern: ZERO_OR_DURATION_PATTERN, default: DEFAULT_BULK_MAX_WAIT, description: 'A batch goes when its oldest item has waited this long; `0ms` sends each item as soon as a batch slot is free', 'x-expected': 'a duration like 50ms (0ms allowed)' })),
  format: Type.Optional(Type.Unsafe<BulkFormatName>({ type: 'string', enum: [...BULK_FORMATS], default: DEFAULT_BULK_FORMAT, description: '`json-array`: the batch is one JSON array (application/json); `ndjson`: one item per line (application/x-ndjson)' })),
  mode: Type.Optional(Type.Unsafe<BulkMode>({ type: 'string', enum: [...BULK_MODES], default: DEFAULT_BULK_MODE, description: '`sync`: each client waits for its own item\'s result; `async`: 202 once the item is queued (in a Redis Stream with `redis:`, else in memory, not durable)' })),
  concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, default: DEFAULT_BULK_CONCURRENCY, description: 'Batches in flight at once; further ones wait, still pending', 'x-expected': 'an integer from 1 to 64' })),
  maxPending: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_BULK_MAX_PENDING, description: 'Items accepted and not yet finished (pending and in flight); past it, 503 with Retry-After, and nothing already accepted is dropped. At least `batchSize`' })),
  retry: Type.Optional(BulkRetry),
  claimAfter: Type.Optional(duration('Async mode with Redis: items another gateway instance took and has not touched for this long are taken over (that instance died). Longer than a batch with its retries takes', DEFAULT_BULK_CLAIM_AFTER))
}, { additionalProperties: false, description: 'Coalesce the route\'s POSTs, one JSON item each, into batches sent to the upstream\'s bulk endpoint (see Bulk writes)' })

/** Route keys that may also be set once for all routes under `defaults:`. */
const UpstreamTls = Type.Object({
  ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA certificates the upstream\'s certificate is verified against, besides the system store (see systemCa)', 'x-expected': 'a file path' })),
  systemCa: Type.Optional(Type.Boolean({ description: 'Trust the system CA store too; false: only ca', default: true })),
  cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM client certificate presented to the upstream (mTLS); needs key', 'x-expected': 'a file path' })),
  key: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key of cert', 'x-expected': 'a file path' })),
  servername: Type.Optional(Type.String({ minLength: 1, description: 'SNI sent and the name the certificate is verified for. Default: the upstream URL\'s host' })),
  rejectUnauthorized: Type.Optional(Type.Boolean({ description: 'Verify the upstream\'s certificate; false is logged as a warning at every start', default: true }))
}, { additionalProperties: false, description: 'TLS toward https upstreams' })

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
  bodyLimit: Type.Optional(size('Largest request body on this route; larger ones get 413. Default: `server.bodyLimit`')),
  breaker: Type.Optional(Breaker),
  retry: Type.Optional(Retry),
  cache: Type.Optional(Cache),
  upstreamTls: Type.Optional(UpstreamTls),
  upstreamHttp2: Type.Optional(Type.Boolean({ description: 'Let an https upstream speak HTTP/2 (ALPN); HTTP/1.1 otherwise', default: false }))
}

const Route = Type.Object({
  id: Type.String({ pattern: ROUTE_ID_PATTERN, description: 'Unique route id: the metric label and breaker name', 'x-expected': 'an id like catalog (lower case letters, digits, - and _)' }),
  prefix: Type.String({ pattern: '^/', description: 'Path prefix, matched on segment boundaries; the longest matching prefix wins', 'x-expected': 'a path starting with /' }),
  ...routePolicy,
  bulk: Type.Optional(Bulk)
}, { additionalProperties: false })

const Defaults = Type.Object(routePolicy, { additionalProperties: false, description: 'Route keys applied to every route that does not set them' })

const ServerTls = Type.Object({
  cert: Type.String({ minLength: 1, description: 'PEM certificate chain the listener presents; a change of the file is picked up without a restart', 'x-expected': 'a file path' }),
  key: Type.String({ minLength: 1, description: 'PEM private key of cert', 'x-expected': 'a file path' }),
  ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA certificates: clients are asked for a certificate, verified against these (mTLS)', 'x-expected': 'a file path' })),
  requestCert: Type.Optional(Type.Boolean({ description: 'With ca: a client without a certificate that ca verifies is refused at the handshake', default: false })),
  minVersion: Type.Optional(Type.Unsafe<TlsVersion>({ type: 'string', enum: [...TLS_VERSIONS], description: 'Oldest TLS version accepted', default: DEFAULT_TLS_MIN_VERSION }))
}, { additionalProperties: false, description: 'Terminate TLS on the listener (HTTPS)' })

const Server = Type.Object({
  host: Type.Optional(Type.String({ minLength: 1, description: 'Address to listen on', default: DEFAULT_SERVER_HOST })),
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Port to listen on; 0 picks a free one and logs it', default: DEFAULT_SERVER_PORT, 'x-expected': 'a port number from 0 to 65535' })),
  bodyLimit: Type.Optional(size('Largest request body; larger ones get 413', DEFAULT_BODY_LIMIT)),
  shutdownTimeout: Type.Optional(duration('On SIGTERM/SIGINT, how long in-flight requests may take to finish', DEFAULT_SHUTDOWN_TIMEOUT)),
  trustProxy: Type.Optional(Type.Boolean({ description: 'Trust X-Forwarded-* from clients (the gateway sits behind another proxy); otherwise X-Forwarded-Host and -Proto are replaced', default: false })),
  maxHeaders: Type.Optional(Type.Integer({ minimum: 1, description: 'Most header fields a request may carry; more get 431', default: DEFAULT_MAX_HEADERS })),
  headersTimeout: Type.Optional(duration('A client that has not sent its request headers in this time is disconnected (slowloris)', DEFAULT_HEADERS_TIMEOUT)),
  sendTimeout: Type.Optional(duration('A client that takes in nothing of a proxied answer for this long is disconnected and the upstream request aborted (nginx\'s send_timeout); a slow reader that makes progress is waited for', DEFAULT_SEND_TIMEOUT)),
  logLevel: Type.Optional(Type.Unsafe<LogLevel>({ type: 'string', enum: [...LOG_LEVELS], description: 'pino log level', default: DEFAULT_LOG_LEVEL })),
  accessLog: Type.Optional(Type.Boolean({ description: 'Log one line per request (route, status, duration, request id)', default: true })),
  watchConfig: Type.Optional(Type.Boolean({ description: 'Reload when the config file changes (a Kubernetes ConfigMap update included); `start --watch` sets it too', default: false })),
  tls: Type.Optional(ServerTls)
}, { additionalProperties: false })

const Management = Type.Object({
  token: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'Bearer token for state-changing /actuator requests (POST, DELETE); empty or unset: they answer 403', 'x-expected': 'a string' })),
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Serve /actuator on this port only (the main port then answers 404 under /actuator). Default: the main port', 'x-expected': 'a port number from 0 to 65535' })),
  host: Type.Optional(Type.String({ minLength: 1, description: 'Address of the management listener. Default: `server.host`' })),
  health: Type.Optional(Type.Object({
    showDetails: Type.Optional(Type.Unsafe<ShowDetails>({ type: 'string', enum: [...SHOW_DETAILS], default: DEFAULT_SHOW_DETAILS, description: 'Who sees the components of /actuator/health and the routes of /actuator/info (Spring\'s `show-details`): `when-authorized` needs `Authorization: Bearer <management.token>`; the others get only `{"status": ...}`. Liveness and readiness always answer' }))
  }, { additionalProperties: false, description: 'The /actuator/health endpoint' }))
}, { additionalProperties: false, description: 'The /actuator endpoints' })

const Redis = Type.Object({
  url: Type.Optional(Type.String({ minLength: 1, description: 'A standalone Redis: `redis://host:port` or `rediss://` (TLS); a password in the URL works', 'x-expected': 'a redis:// or rediss:// URL' })),
  cluster: Type.Optional(Type.Array(Type.String({ minLength: 1, 'x-expected': 'a redis:// or rediss:// URL' }), { minItems: 1, description: 'Redis Cluster startup nodes (`redis://host:port` each)' })),
  keyPrefix: Type.Optional(Type.String({ description: 'Prefix of every key the gateway writes', default: DEFAULT_REDIS_KEY_PREFIX })),
  connectTimeout: Type.Optional(duration('How long a connection attempt may take', DEFAULT_REDIS_CONNECT_TIMEOUT)),
  commandTimeout: Type.Optional(duration('A command not answered in this time is given up and the request bypasses the cache: a slow Redis never slows the gateway', DEFAULT_REDIS_COMMAND_TIMEOUT))
}, { additionalProperties: false, description: `The cache's shared store: one of \`url\` or \`cluster\`. Default: \`${REDIS_URL_ENV}\` when set, otherwise an in-memory store in each process (not shared)` })

const thresholds = (description: string, defaults: { readonly cpu: number, readonly memory: number }): TObject<{ cpu: TOptional<TNumber>, memory: TOptional<TNumber> }> => Type.Object({
  cpu: Type.Optional(percent('CPU % of a master: (used_cpu_sys + used_cpu_user) time over wall time', defaults.cpu)),
  memory: Type.Optional(percent('Memory % of a master: used_memory over maxmemory, or over total_system_memory when maxmemory is 0', defaults.memory))
}, { additionalProperties: false, description })

const Autoscaler = Type.Object({
  mode: Type.Optional(Type.Unsafe<AutoscalerMode>({ type: 'string', enum: [...AUTOSCALER_MODES], default: DEFAULT_AUTOSCALER_MODE, description: '`recommend`: measure, decide, log and export, change nothing; `apply`: act (needs `redis.cluster`, the cluster it manages)' })),
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, default: DEFAULT_AUTOSCALER_PORT, description: 'Port of the autoscaler\'s own /actuator/prometheus and /actuator/health', 'x-expected': 'a port number from 0 to 65535' })),
  interval: Type.Optional(duration('How often every master is measured (INFO) and a decision is taken', DEFAULT_AUTOSCALER_INTERVAL)),
  window: Type.Optional(duration('Decisions use per-master averages over this window, never one sample; at least twice `interval`', DEFAULT_AUTOSCALER_WINDOW)),
  cooldown: Type.Optional(duration('After an action, no other action for this long', DEFAULT_AUTOSCALER_COOLDOWN)),
  scaleOut: Type.Optional(thresholds('Scale out when the busiest master is above either threshold (one hot master is enough to hurt)', DEFAULT_SCALE_OUT)),
  scaleIn: Type.Optional(thresholds('Scale in when the cluster average is below both thresholds; each below its `scaleOut` one', DEFAULT_SCALE_IN)),
  minMasters: Type.Optional(Type.Integer({ minimum: MIN_CLUSTER_MASTERS, default: DEFAULT_MIN_MASTERS, description: 'Never scale in below this many masters', 'x-expected': `an integer of at least ${MIN_CLUSTER_MASTERS} (redis-cli's minimum)` })),
  maxMasters: Type.Optional(Type.Integer({ minimum: MIN_CLUSTER_MASTERS, default: DEFAULT_MAX_MASTERS, description: 'Never scale out above this many masters; at least `minMasters`', 'x-expected': `an integer of at least ${MIN_CLUSTER_MASTERS} (redis-cli's minimum)` })),
  spareNodes: Type.Optional(Type.Array(Type.String({ minLength: 1, 'x-expected': 'a redis://host:port URL' }), { uniqueItems: true, default: [], description: 'Empty cluster-enabled redis-servers it may add (`redis://host:port` each); drained nodes return here' })),
  backup: Type.Optional(Type.Boolean({ default: true, description: 'BGSAVE every master and wait for it (LASTSAVE moves) before moving any slot' })),
  migration: Type.Optional(Type.Object({
    pipeline: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: DEFAULT_MIGRATION_PIPELINE, description: 'Keys per MIGRATE ... KEYS batch', 'x-expected': 'an integer from 1 to 10000' })),
    timeout: Type.Optional(duration('Timeout of one MIGRATE batch', DEFAULT_MIGRATION_TIMEOUT))
  }, { additionalProperties: false, description: 'How slots are moved, key batch by key batch' }))
}, { additionalProperties: false, description: 'The Redis Cluster autoscaler, run by `breakwater autoscale`: measures the masters of `redis.cluster` and scales it out and in. The gateway ignores this block' })

export const ConfigSchema = Type.Object({
  server: Type.Optional(Server),
  management: Type.Optional(Management),
  redis: Type.Optional(Redis),
  defaults: Type.Optional(Defaults),
  routes: Type.Optional(Type.Array(Route, { description: 'The routes, matched by longest prefix' })),
  autoscaler: Type.Optional(Autoscaler)
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
  readonly sendTimeoutMs: number
  readonly logLevel: LogLevel
  readonly accessLog: boolean
  readonly watchConfig: boolean
  /** null: plain HTTP. */
  readonly tls: ServerTlsConfig | null
}

/** The listener's TLS: file paths, read at the start and again when they change. */
export interface ServerTlsConfig {
  readonly certFile: string
  readonly keyFile: string
  /** null: clients are not asked for a certificate. */
  readonly caFile: string | null
  readonly requestCert: boolean
  readonly minVersion: TlsVersion
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
  readonly breaker: BreakerConfig
  readonly retry: RetryConfig
  /** null: the route does not cache. */
  readonly cache: CacheConfig | null
  /** null: the route does not coalesce writes. */
  readonly bulk: BulkConfig | null
  /** null: https upstreams are verified against the system store, with no client certificate. */
  readonly upstreamTls: UpstreamTlsConfig | null
  readonly upstreamHttp2: boolean
}

/** TLS toward a route's https upstreams: file paths, read when the route's runtime is built. */
export interface UpstreamTlsConfig {
  readonly caFile: string | null
  readonly systemCa: boolean
  readonly certFile: string | null
  readonly keyFile: string | null
  readonly servername: string | null
  readonly rejectUnauthorized: boolean
}

/** A route's write coalescing: its POSTs are gathered into batches toward `path`. */
export interface BulkConfig {
  /** The upstream's bulk endpoint, starting with /; sent as is (no prefix rewrite). */
  readonly path: string
  /** Items per batch at most, 1 to 100000; never above `maxPending`. */
  readonly batchSize: number
  readonly maxBatchBytes: number
  /** 0: each item goes as soon as a batch slot is free. */
  readonly maxWaitMs: number
  readonly format: BulkFormatName
  readonly mode: BulkMode
  /** Batches in flight at once, 1 to 64. */
  readonly concurrency: number
  /** Items accepted and not yet finished (pending plus in flight); at least `batchSize`. */
  readonly maxPending: number
  /** Extra attempts at a failed batch, with exponential backoff and full jitter between `backoffMs` and `maxBackoffMs`. */
  readonly retry: { readonly retries: number, readonly backoffMs: number, readonly maxBackoffMs: number }
  /** Async mode with Redis: how long another instance's taken, untouched items wait before this one claims them. */
  readonly claimAfterMs: number
}

export interface CacheConfig {
  /** null: only what RFC 9111 allows is stored. */
  readonly ttlMs: number | null
  readonly maxObjectSizeBytes: number
  readonly staleWhileRevalidateMs: number
  readonly staleIfErrorMs: number
  /** Lower-case header names. */
  readonly vary: readonly string[]
  /** Variants kept per URL (responses with Vary), at least 1. */
  readonly maxVariants: number
  /** The targeted field's lower-case name (RFC 9213), honoured before cdn-cache-control. */
  readonly targetedField: string
  /** null: no in-process tier in front of Redis. */
  readonly memory: { readonly maxEntries: number, readonly ttlMs: number } | null
}

export interface RedisConfig {
  /** Exactly one of `url` and `cluster` is set. */
  readonly url: string | null
  readonly cluster: readonly string[] | null
  readonly keyPrefix: string
  readonly connectTimeoutMs: number
  readonly commandTimeoutMs: number
}

export interface BreakerConfig {
  readonly mode: BreakerMode
  readonly failureThreshold: number
  /** null: the rate trigger is off. */
  readonly failureRateThreshold: number | null
  readonly slidingWindowMs: number
  readonly minimumCalls: number
  readonly slowCallThresholdMs: number
  readonly slowCallRateThreshold: number
  readonly recoveryTimeoutMs: number
  /** null: every open waits `recoveryTimeoutMs`. */
  readonly recoveryBackoff: { readonly multiplier: number, readonly maxMs: number } | null
  readonly halfOpenCalls: number
  readonly failureStatuses: readonly number[]
  /** null: 503 problem+json with Retry-After. */
  readonly fallback: { readonly status: number, readonly contentType: string, readonly body: string } | null
}

export interface RetryConfig {
  /** 0: no retry (the route sets no `retry:`). */
  readonly retries: number
  readonly backoffMs: number
  readonly maxBackoffMs: number
  readonly statuses: readonly number[]
  readonly onConnect: boolean
  readonly onTimeout: boolean
}

export interface ManagementConfig {
  /** null: state-changing /actuator requests answer 403. */
  readonly token: string | null
  /** null: /actuator is served on the main port. */
  readonly port: number | null
  readonly host: string
  /** Who sees health components and the info's routes; the rest get the status alone. */
  readonly showDetails: ShowDetails
}

/** Scale thresholds, in percent (0 to 100). */
export interface LoadThresholds {
  readonly cpu: number
  readonly memory: number
}

/** The `autoscaler:` block: the Redis Cluster control loop's settings (built-in defaults when the block is absent). */
export interface AutoscalerConfig {
  readonly mode: AutoscalerMode
  readonly port: number
  readonly intervalMs: number
  /** At least twice `intervalMs`, so that a decision always averages two samples or more. */
  readonly windowMs: number
  readonly cooldownMs: number
  /** Each threshold above its `scaleIn` one. */
  readonly scaleOut: LoadThresholds
  readonly scaleIn: LoadThresholds
  /** At least 3, at most `maxMasters`. */
  readonly minMasters: number
  readonly maxMasters: number
  /** `redis://host:port` URLs as written. */
  readonly spareNodes: readonly string[]
  readonly backup: boolean
  readonly migration: { readonly pipeline: number, readonly timeoutMs: number }
}

export interface GatewayConfig {
  /** Where the config came from, for messages. */
  readonly source: string
  readonly server: ServerConfig
  readonly management: ManagementConfig
  /** null: each process caches in memory. */
  readonly redis: RedisConfig | null
  readonly routes: readonly RouteConfig[]
  readonly autoscaler: AutoscalerConfig
}
