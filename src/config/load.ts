// Config loading: YAML text -> ${VAR} substitution in values -> schema -> cross-field checks -> a resolved, deep-frozen GatewayConfig.
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createSecureContext } from 'node:tls'
import { Ajv, type ErrorObject } from 'ajv'
import { isMap, isNode, isPair, isScalar, isSeq, LineCounter, parse, parseDocument, Scalar, visit, type Document, type Node } from 'yaml'
import { ConfigError, formatPath, type ConfigIssue } from './config-error.js'
import {
  ConfigSchema, DEFAULT_BODY_LIMIT, DEFAULT_FAILURE_STATUSES, DEFAULT_FAILURE_THRESHOLD, DEFAULT_FALLBACK_CONTENT_TYPE,
  DEFAULT_HALF_OPEN_CALLS, DEFAULT_TLS_MIN_VERSION, DEFAULT_HEADERS_TIMEOUT, DEFAULT_SEND_TIMEOUT, DEFAULT_LOG_LEVEL, DEFAULT_MAX_HEADERS, DEFAULT_MINIMUM_CALLS,
  DEFAULT_RECOVERY_TIMEOUT, DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF, DEFAULT_RETRY_MAX_BACKOFF, DEFAULT_RETRY_ON,
  DEFAULT_ROUTE_TIMEOUT, DEFAULT_SERVER_HOST, DEFAULT_SERVER_PORT, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_SLIDING_WINDOW,
  DEFAULT_SLOW_CALL_RATE_THRESHOLD, DEFAULT_SLOW_CALL_THRESHOLD, isReservedPath, RESERVED_PREFIX,
  DEFAULT_CACHE_MAX_OBJECT_SIZE, DEFAULT_CACHE_MAX_VARIANTS, DEFAULT_CACHE_TARGETED_FIELD, DEFAULT_MEMORY_TIER_ENTRIES, DEFAULT_MEMORY_TIER_TTL, DEFAULT_REDIS_COMMAND_TIMEOUT,
  DEFAULT_REDIS_CONNECT_TIMEOUT, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_SHOW_DETAILS, REDIS_URL_ENV,
  DEFAULT_BULK_BATCH_SIZE, DEFAULT_BULK_CONCURRENCY, DEFAULT_BULK_FORMAT, DEFAULT_BULK_MAX_BATCH_BYTES, DEFAULT_BULK_MAX_PENDING,
  DEFAULT_BULK_MAX_WAIT, DEFAULT_BULK_MODE, DEFAULT_BULK_RETRIES, DEFAULT_BULK_RETRY_BACKOFF, DEFAULT_BULK_RETRY_MAX_BACKOFF, DEFAULT_BULK_CLAIM_AFTER,
  DEFAULT_AUTOSCALER_COOLDOWN, DEFAULT_AUTOSCALER_INTERVAL, DEFAULT_AUTOSCALER_MODE, DEFAULT_AUTOSCALER_PORT, DEFAULT_AUTOSCALER_WINDOW,
  DEFAULT_MAX_MASTERS, DEFAULT_MIGRATION_PIPELINE, MIN_CLUSTER_MASTERS, DEFAULT_MIGRATION_TIMEOUT, DEFAULT_MIN_MASTERS, DEFAULT_SCALE_IN, DEFAULT_SCALE_OUT,
  type AutoscalerConfig, type BreakerConfig, type BulkConfig, type CacheConfig, type ConfigFile, type GatewayConfig, type RedisConfig, type RetryConfig,
  type RouteConfig, type ServerConfig, type UpstreamTlsConfig
} from './schema.js'
import { parseDurationMs, parseSizeBytes } from './units.js'
import { indentationIssue } from './yaml-errors.js'

type Path = ReadonlyArray<string | number>
type Env = Readonly<Record<string, string | undefined>>

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true })
ajv.addKeyword('x-expected')
const validateSchema = ajv.compile(ConfigSchema)

export interface LoadOptions {
  /**
   * A config that must route traffic (`start`, `check`): one without routes is an error at `routes`. The autoscaler
   * reads the same file for its `redis:` and `autoscaler:` blocks, and needs none.
   * @default false
   */
  readonly requireRoutes?: boolean
}

/** Reads and loads `file`; throws ConfigError listing every problem. */
export async function loadConfigFile (file: string, env: Env = process.env, options: LoadOptions = {}): Promise<GatewayConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError(file, [{ line: 0, col: 0, path: '', message: `cannot read the config file: ${(err as Error).message}` }])
  }
  return parseConfig(text, file, env, options)
}

/** Loads config text; `file` only names the source in messages. Throws ConfigError listing every problem. */
export function parseConfig (text: string, file: string, env: Env = process.env, options: LoadOptions = {}): GatewayConfig {
  const issues: ConfigIssue[] = []
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  const locate = (offset: number): { line: number, col: number } => lineCounter.linePos(offset)

  // Past a syntax error the document's shape is a guess: stop there rather than report follow-on errors.
  if (doc.errors.length > 0) {
    const found = doc.errors.map((error) => {
      const { line, col } = locate(error.pos[0])
      const indentation = indentationIssue(text, error, { line, col })
      return { indentation, issue: indentation ?? { line, col, path: '', message: `YAML: ${error.message.split('\n')[0] ?? error.message}` } }
    })
    // A line indented wrong breaks several of the library's rules at once: said once, without the others it caused.
    const indented = found.filter(({ indentation }) => indentation !== null)
    const said = new Set<string>()
    for (const { issue } of indented.length > 0 ? indented : found) {
      const key = `${issue.line}:${issue.col} ${issue.message}`
      if (!said.has(key)) issues.push(issue)
      said.add(key)
    }
    throw new ConfigError(file, issues)
  }
  const unresolved = substituteEnv(doc, text, env, (offset, path, message) => {
    issues.push({ ...locate(offset), path: formatPath(path), message })
  })

  const data: unknown = doc.toJS() ?? {}
  const reported = new Set<string>()
  const at = (path: Path, message: string, onKey = false): void => {
    const offset = offsetOf(doc, path, onKey)
    // A value with an unset ${VAR} is already reported; its leftover text would only add a second error.
    if (!onKey && unresolved.has(offset)) return
    const issue = { ...locate(offset), path: formatPath(path), message }
    // A value breaking two keywords that share one `x-expected` (2.5 for an integer with a minimum) says it once.
    const key = `${issue.line}:${issue.col} ${issue.path} ${message}`
    if (reported.has(key)) return
    reported.add(key)
    issues.push(issue)
  }

  if (!validateSchema(data)) {
    for (const error of relevantErrors(validateSchema.errors ?? [])) reportSchemaError(error, at)
  }
  const raw = data as ConfigFile
  checkCrossField(raw, at)
  if (options.requireRoutes === true && (raw.routes ?? []).length === 0) {
    at(['routes'], 'expected at least one route: without one every request is answered 404')
  }
  const redisUrl = env[REDIS_URL_ENV]
  if (raw.redis === undefined && redisUrl !== undefined && redisUrl !== '' && !isRedisUrl(redisUrl)) {
    issues.push({ line: 0, col: 0, path: '', message: `${REDIS_URL_ENV}: expected a redis:// or rediss:// URL, got ${show(redisUrl)}` })
  }
  if (issues.length > 0) throw new ConfigError(file, issues)
  return deepFreeze(resolve(raw, file, redisUrl === '' ? undefined : redisUrl))
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

/**
 * `${VAR}` and `${VAR:-default}` in scalar values (never in comments or keys), as docker compose interpolates.
 * A plain scalar is read again after substitution, so `port: ${PORT:-8080}` is the number 8080.
 * Returns the offsets of the values left with an unset variable.
 */
function substituteEnv (doc: Document, text: string, env: Env, report: (offset: number, path: Path, message: string) => void): Set<number> {
  const unresolved = new Set<number>()
  visit(doc, {
    Scalar: (key, node, ancestors) => {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return
      const [start, end] = node.range ?? [0, 0]
      // Positions come from the source: quotes, escapes and block indicators shift them in the parsed value.
      const sources = [...text.slice(start, end).matchAll(ENV_REF)].map((match) => start + match.index)
      let n = 0
      const substituted = node.value.replace(ENV_REF, (match, name: string, fallback: string | undefined) => {
        const offset = sources[n++] ?? start
        const value = env[name]
        if (value !== undefined && value !== '') return value
        if (fallback !== undefined) return fallback
        unresolved.add(start)
        report(offset, keyPath(ancestors, node), `environment variable ${name} is not set (use \${${name}:-default} for a default)`)
        return match
      })
      node.value = node.type === Scalar.PLAIN ? parse(substituted) as unknown : substituted
    }
  })
  return unresolved
}

/** The key path of `node` from its ancestors, as `visit` passes them. */
function keyPath (ancestors: readonly unknown[], node: unknown): Path {
  const chain = [...ancestors, node]
  const path: Array<string | number> = []
  chain.forEach((parent, i) => {
    if (isPair(parent) && isScalar(parent.key)) path.push(String(parent.key.value))
    else if (isSeq(parent)) path.push(parent.items.indexOf(chain[i + 1]))
  })
  return path
}

/** The offset of the node at `path` (of its key, with `onKey`); the nearest existing ancestor when it is missing. */
function offsetOf (doc: Document, path: Path, onKey: boolean): number {
  let node: unknown = doc.contents
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0
  for (let i = 0; i < path.length; i++) {
    const segment = path[i] as string | number
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment))
      if (pair === undefined) return offset
      if (onKey && i === path.length - 1 && isNode(pair.key)) return pair.key.range?.[0] ?? offset
      node = pair.value
    } else if (isNode(node) && 'items' in node && typeof segment === 'number') {
      node = (node.items as unknown[])[segment]
    } else {
      return offset
    }
    if (isNode(node)) offset = node.range?.[0] ?? offset
  }
  return offset
}

/**
 * ajv reports every branch of an `anyOf`; say one thing per place: the deeper errors when the value
 * had the right overall shape, otherwise the union's own "expected ..." message.
 */
function relevantErrors (errors: readonly ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf')
  return errors.filter((error) => {
    for (const union of unions) {
      const deeper = errors.some((e) => e.instancePath.startsWith(union.instancePath + '/'))
      if (error === union) return !deeper
      if (error.schemaPath.startsWith(union.schemaPath.replace(/\/anyOf$/, '') + '/anyOf/') && error.instancePath === union.instancePath) return false
    }
    return true
  })
}

function pathOf (instancePath: string): Array<string | number> {
  if (instancePath === '') return []
  return instancePath.slice(1).split('/').map((segment) => {
    const key = segment.replace(/~1/g, '/').replace(/~0/g, '~')
    return /^(0|[1-9][0-9]*)$/.test(key) ? Number(key) : key
  })
}

const ROUTE_KEYS = ConfigSchema.properties.routes.items.properties

const show = (value: unknown): string => value === undefined ? 'nothing' : JSON.stringify(value)
const article = (noun: string): string => `${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun}`

function reportSchemaError (error: ErrorObject, at: (path: Path, message: string, onKey?: boolean) => void): void {
  const path = pathOf(error.instancePath)
  const expected = (error.parentSchema as { 'x-expected'?: string } | undefined)?.['x-expected']
  const params = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty)
      const known = Object.keys((error.parentSchema as { properties?: object }).properties ?? {})
      if (path.length === 1 && path[0] === 'defaults' && Object.hasOwn(ROUTE_KEYS, key)) {
        at([...path, key], `${key} is set on each route, not under defaults`, true)
        return
      }
      at([...path, key], `unknown key (known keys: ${known.join(', ')})`, true)
      return
    }
    case 'required':
      at([...path, String(params.missingProperty)], 'missing required key')
      return
    case 'enum':
      at(path, `expected one of ${(params.allowedValues as unknown[]).join(', ')}, got ${show(error.data)}`)
      return
    case 'type':
      at(path, `expected ${expected ?? article(String(params.type))}, got ${show(error.data)}`)
      return
    case 'minimum':
    case 'maximum':
      at(path, `expected ${expected ?? `a number ${String(params.comparison)} ${String(params.limit)}`}, got ${show(error.data)}`)
      return
    case 'minItems':
      at(path, `expected ${expected ?? `at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}`}, got ${show(error.data)}`)
      return
    case 'minLength':
      at(path, `expected ${expected ?? (params.limit === 1 ? 'a non-empty string' : `at least ${String(params.limit)} characters`)}, got ${show(error.data)}`)
      return
    case 'uniqueItems':
      at(path, `expected no duplicates, got ${show(error.data)}`)
      return
    default:
      at(path, `expected ${expected ?? (error.message ?? 'a valid value')}, got ${show(error.data)}`)
  }
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** Headers whose meaning belongs to the connection or the framing, which the gateway sets itself. */
const UNSETTABLE_HEADERS = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length'])

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** Checks that span keys or need more than a schema: ids and prefixes, URLs, the reserved prefix, header names. */
function checkCrossField (raw: ConfigFile, at: (path: Path, message: string, onKey?: boolean) => void): void {
  checkRedis(raw.redis, at)
  checkServerTls(isObject(raw.server) ? raw.server.tls : undefined, at)
  checkAutoscaler(raw.autoscaler, raw.redis, at)
  const defaults: Record<string, unknown> = isObject(raw.defaults) ? raw.defaults : {}
  checkCache(defaults.cache, ['defaults', 'cache'], raw.redis !== undefined, at)
  checkUpstream(defaults.upstream, ['defaults', 'upstream'], at)
  checkHeaders(defaults.headers, ['defaults', 'headers'], at)
  checkRewritePrefix(defaults.rewritePrefix, ['defaults', 'rewritePrefix'], at)
  checkHost(defaults.host, ['defaults', 'host'], at)
  checkUpstreamTls(defaults.upstreamTls, ['defaults', 'upstreamTls'], at)

  const routes: unknown[] = Array.isArray(raw.routes) ? raw.routes : []
  const ids = new Map<string, number>()
  const matches = new Map<string, number>()
  routes.forEach((route, i) => {
    if (!isObject(route)) return
    const here = (key: string): Path => ['routes', i, key]
    if (typeof route.id === 'string') {
      const first = ids.get(route.id)
      if (first === undefined) ids.set(route.id, i)
      else at(here('id'), `duplicate route id ${show(route.id)} (also routes[${first}])`)
    }
    checkUpstream(route.upstream, here('upstream'), at)
    if (route.upstream === undefined && defaults.upstream === undefined) {
      at(['routes', i], 'missing required key "upstream" (set it on the route or under defaults)')
    }
    checkHeaders(route.headers, here('headers'), at)
    checkRewritePrefix(route.rewritePrefix, here('rewritePrefix'), at)
    checkHost(route.host, here('host'), at)
    checkUpstreamTls(route.upstreamTls, here('upstreamTls'), at)
    checkCache(route.cache, here('cache'), raw.redis !== undefined, at)
    checkBulk(route.bulk, route.methods ?? defaults.methods, route.methods === undefined, here('bulk'), at)
    if (typeof route.prefix !== 'string' || !route.prefix.startsWith('/')) return
    const prefix = canonicalPrefix(route.prefix)
    if (prefix === null) {
      at(here('prefix'), `expected a plain path prefix like /api/catalog (no empty, . or .. segments, no ? or #), got ${show(route.prefix)}`)
      return
    }
    if (isReservedPath(prefix)) {
      at(here('prefix'), `${RESERVED_PREFIX} is reserved for the gateway's own endpoints, got ${show(route.prefix)}`)
      return
    }
    const host = route.host ?? defaults.host
    const methods = route.methods ?? defaults.methods
    const key = `${prefix} ${typeof host === 'string' ? host.toLowerCase() : '*'} ${Array.isArray(methods) ? [...methods].sort().join(',') : '*'}`
    const first = matches.get(key)
    if (first === undefined) matches.set(key, i)
    else at(here('prefix'), `routes[${first}] already matches the same prefix, host and methods`)
  })
}

const isRedisUrl = (url: string): boolean => {
  try {
    const { protocol } = new URL(url)
    return protocol === 'redis:' || protocol === 'rediss:'
  } catch {
    return false
  }
}

/** `host:port` of a redis:// or rediss:// URL with an explicit port and nothing else but credentials; null otherwise. */
function redisNodeOf (url: string): string | null {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return null
  }
  const plain = (parsed.pathname === '' || parsed.pathname === '/') && parsed.search === '' && parsed.hash === ''
  if (!isRedisUrl(url) || parsed.hostname === '' || parsed.port === '' || !plain) return null
  return parsed.host
}

const isPercent = (value: unknown): value is number => typeof value === 'number' && value > 0 && value <= 100

/**
 * The `autoscaler:` block's checks across keys. A pair that disagrees is reported at the key the user wrote,
 * naming the other side's value (or its default), as bulk's retry backoffs are.
 */
function checkAutoscaler (value: unknown, redis: unknown, at: (path: Path, message: string, onKey?: boolean) => void): void {
  if (!isObject(value)) return
  const here = (...keys: string[]): Path => ['autoscaler', ...keys]
  const cluster = isObject(redis) && Array.isArray(redis.cluster) ? redis.cluster : null
  if (value.mode === 'apply' && cluster === null) {
    at(here('mode'), 'apply mode changes the cluster under redis.cluster: set redis.cluster (its startup nodes), or use mode: recommend')
  }

  // Values the schema refused are reported once, by it, not compared.
  const { minMasters, maxMasters } = value
  const min = minMasters ?? DEFAULT_MIN_MASTERS
  const max = maxMasters ?? DEFAULT_MAX_MASTERS
  const isMasters = (count: unknown): count is number => Number.isInteger(count) && (count as number) >= MIN_CLUSTER_MASTERS
  if (isMasters(min) && isMasters(max) && min > max) {
    if (maxMasters === undefined) at(here('minMasters'), `expected at most maxMasters (${DEFAULT_MAX_MASTERS} by default), got ${show(minMasters)}`)
    // maxMasters set alone cannot be below the default minMasters: the schema's minimum is the same 3.
    else at(here('maxMasters'), `expected at least minMasters (${String(minMasters)}), got ${show(maxMasters)}`)
  }

  // A scale-in threshold at or above its scale-out one would let one load both add and remove a node: it would flap.
  const scaleOut = isObject(value.scaleOut) ? value.scaleOut : {}
  const scaleIn = isObject(value.scaleIn) ? value.scaleIn : {}
  for (const metric of ['cpu', 'memory'] as const) {
    const outSet = scaleOut[metric]
    const inSet = scaleIn[metric]
    const out = outSet ?? DEFAULT_SCALE_OUT[metric]
    const low = inSet ?? DEFAULT_SCALE_IN[metric]
    if (!isPercent(out) || !isPercent(low) || low < out) continue
    if (inSet === undefined) {
      at(here('scaleOut', metric), `expected above scaleIn.${metric} (${DEFAULT_SCALE_IN[metric]} by default), got ${show(outSet)}`)
    } else {
      at(here('scaleIn', metric), `expected below scaleOut.${metric} (${outSet === undefined ? `${DEFAULT_SCALE_OUT[metric]} by default` : String(outSet)}), got ${show(inSet)}: the cluster would flap`)
    }
  }

  // The policy never decides on one sample: the window must hold two intervals at least.
  const intervalMs = durationMsOf(value.interval ?? DEFAULT_AUTOSCALER_INTERVAL)
  const windowMs = durationMsOf(value.window ?? DEFAULT_AUTOSCALER_WINDOW)
  if (intervalMs !== null && windowMs !== null && windowMs < 2 * intervalMs) {
    if (value.window === undefined) {
      at(here('interval'), `expected at most half of window (${DEFAULT_AUTOSCALER_WINDOW} by default), got ${show(value.interval)}: a decision averages two samples or more`)
    } else {
      const interval = value.interval === undefined ? `${DEFAULT_AUTOSCALER_INTERVAL} by default` : String(value.interval)
      at(here('window'), `expected at least twice interval (${interval}), got ${show(value.window)}: a decision averages two samples or more`)
    }
  }

  if (!Array.isArray(value.spareNodes)) return
  const members = new Map<string, number>()
  cluster?.forEach((url, i) => {
    const node = typeof url === 'string' ? redisNodeOf(url) : null
    if (node !== null && !members.has(node)) members.set(node, i)
  })
  value.spareNodes.forEach((url, i) => {
    if (typeof url !== 'string' || url === '') return
    const node = redisNodeOf(url)
    const member = node === null ? undefined : members.get(node)
    if (node === null) at(['autoscaler', 'spareNodes', i], `expected a redis://host:port URL (an explicit port, no path or query), got ${show(url)}`)
    else if (member !== undefined) at(['autoscaler', 'spareNodes', i], `${node} is already a node of the cluster (redis.cluster[${member}]), not a spare`)
  })
}

/** A route's `upstreamTls:` block (or the defaults'), resolved; null without one. */
function upstreamTlsOf (tls: NonNullable<ConfigFile['defaults']>['upstreamTls']): UpstreamTlsConfig | null {
  if (tls === undefined) return null
  return {
    caFile: tls.ca ?? null,
    systemCa: tls.systemCa ?? true,
    certFile: tls.cert ?? null,
    keyFile: tls.key ?? null,
    servername: tls.servername ?? null,
    rejectUnauthorized: tls.rejectUnauthorized ?? true
  }
}

/** A route's upstream TLS files: readable, and a client key that matches its certificate. */
function checkUpstreamTls (value: unknown, path: Path, at: (path: Path, message: string, onKey?: boolean) => void): void {
  if (!isObject(value)) return
  if ((value.cert === undefined) !== (value.key === undefined)) at(path, 'expected cert and key together (the client certificate and its key)')
  checkTlsFiles(value, path, at)
}

/** The cert, key and ca files named in `value`: readable, PEM, and a key that matches its certificate; each fault at its key. */
function checkTlsFiles (value: Record<string, unknown>, path: Path, at: (path: Path, message: string, onKey?: boolean) => void): void {
  const read = (key: 'cert' | 'key' | 'ca'): string | null => {
    const file = value[key]
    if (typeof file !== 'string' || file === '') return null
    try {
      return readFileSync(file, 'utf8')
    } catch (err) {
      at([...path, key], `cannot read ${show(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      return null
    }
  }
  const cert = read('cert')
  const key = read('key')
  const ca = read('ca')
  if (cert !== null && key !== null) {
    try {
      createSecureContext({ cert, key })
    } catch (err) {
      at([...path, 'key'], `the certificate and key are not a usable pair: ${(err as Error).message}`)
    }
  }
  if (ca !== null) {
    try {
      createSecureContext({ ca })
    } catch (err) {
      at([...path, 'ca'], `not PEM CA certificates: ${(err as Error).message}`)
    }
  }
}

/**
 * The listener's certificate, key and CA files: readable, PEM, and a key that matches the certificate. Checked here so
 * that `breakwater check` and a reload refuse what the listener would fail on.
 */
function checkServerTls (value: unknown, at: (path: Path, message: string, onKey?: boolean) => void): void {
  if (!isObject(value)) return
  const path = ['server', 'tls']
  if (value.requestCert === true && value.ca === undefined) at([...path, 'requestCert'], 'requestCert: true needs ca, the CA certificates client certificates are verified against')
  checkTlsFiles(value, path, at)
}

function checkRedis (value: unknown, at: (path: Path, message: string, onKey?: boolean) => void): void {
  if (!isObject(value)) return
  if ((value.url === undefined) === (value.cluster === undefined)) {
    at(['redis'], 'expected exactly one of url (standalone) and cluster (startup nodes)')
  }
  const urls = typeof value.url === 'string' ? [[['redis', 'url'], value.url] as const] : []
  const nodes = Array.isArray(value.cluster) ? value.cluster.map((url, i) => [['redis', 'cluster', i], url] as const) : []
  for (const [path, url] of [...urls, ...nodes]) {
    if (typeof url === 'string' && !isRedisUrl(url)) at(path, `expected a redis:// or rediss:// URL, got ${show(url)}`)
  }
  // Redis Cluster hashes the text between braces: a brace in the prefix would split an entry from its lock and marker.
  if (typeof value.keyPrefix === 'string' && /[{}]/.test(value.keyPrefix)) at(['redis', 'keyPrefix'], `expected a prefix without { or }, got ${show(value.keyPrefix)}`)
}

function checkCache (value: unknown, path: Path, hasRedis: boolean, at: (path: Path, message: string, onKey?: boolean) => void): void {
  if (!isObject(value)) return
  if (Array.isArray(value.vary)) {
    value.vary.forEach((name, i) => {
      if (typeof name === 'string' && !HEADER_NAME.test(name)) at([...path, 'vary', i], `expected a header name (an RFC 9110 token), got ${show(name)}`)
    })
  }
  // Without Redis the store is already in this process: a second in-process tier would only hold copies.
  if (value.memory !== undefined && !hasRedis) at([...path, 'memory'], 'an in-process tier needs a redis: block to sit in front of', true)
}

/** A duration the schema accepts, in ms; null for anything else, which the schema already reported. */
function durationMsOf (value: unknown): number | null {
  if (typeof value !== 'string') return null
  try {
    return parseDurationMs(value)
  } catch {
    return null
  }
}

function checkBulk (value: unknown, methods: unknown, methodsFromDefaults: boolean, path: Path, at: (path: Path, message: string, onKey?: boolean) => void): void {
  if (!isObject(value)) return
  if (Array.isArray(methods) && !methods.includes('POST')) {
    at(path, `a bulk route coalesces POST requests: add POST to methods${methodsFromDefaults ? ' (the route\'s methods come from defaults)' : ''}`, true)
  }
  // Past maxPending new items are refused, so a batch that needs more than that to fill never fills by count.
  const batchSize = value.batchSize ?? DEFAULT_BULK_BATCH_SIZE
  if (typeof batchSize === 'number' && typeof value.maxPending === 'number' && value.maxPending < batchSize) {
    const limit = value.batchSize === undefined ? `${DEFAULT_BULK_BATCH_SIZE} by default` : String(batchSize)
    at([...path, 'maxPending'], `expected at least batchSize (${limit}), got ${show(value.maxPending)}: a batch could never fill, so each would wait out maxWait`)
  }
  const retry = isObject(value.retry) ? value.retry : {}
  const backoffMs = durationMsOf(retry.backoff ?? DEFAULT_BULK_RETRY_BACKOFF)
  const maxBackoffMs = durationMsOf(retry.maxBackoff ?? DEFAULT_BULK_RETRY_MAX_BACKOFF)
  if (backoffMs === null || maxBackoffMs === null || backoffMs <= maxBackoffMs) return
  // Said at the key the user wrote: the defaults alone are consistent.
  if (retry.backoff === undefined) {
    at([...path, 'retry', 'maxBackoff'], `expected at least backoff (${DEFAULT_BULK_RETRY_BACKOFF} by default), got ${show(retry.maxBackoff)}`)
  } else {
    const limit = retry.maxBackoff === undefined ? `${DEFAULT_BULK_RETRY_MAX_BACKOFF} by default` : String(retry.maxBackoff)
    at([...path, 'retry', 'backoff'], `expected at most maxBackoff (${limit}), got ${show(retry.backoff)}`)
  }
}

function checkUpstream (value: unknown, path: Path, at: (path: Path, message: string) => void): void {
  const urls = typeof value === 'string' ? [value] : Array.isArray(value) ? value : []
  urls.forEach((url, i) => {
    if (typeof url !== 'string') return
    const where = typeof value === 'string' ? path : [...path, i]
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      at(where, `expected an http(s) URL like http://127.0.0.1:9001, got ${show(url)}`)
      return
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      at(where, `expected an http or https URL, got ${show(url)}`)
    } else if (parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '' || parsed.username !== '' || parsed.password !== '') {
      at(where, `expected an origin like http://host:port, without path, query or credentials (use rewritePrefix for paths), got ${show(url)}`)
    }
  })
}

function checkHeaders (value: unknown, path: Path, at: (path: Path, message: string, onKey?: boolean) => void): void {
  if (!isObject(value)) return
  for (const [name, headerValue] of Object.entries(value)) {
    if (!HEADER_NAME.test(name)) at([...path, name], `expected a header name (an RFC 9110 token), got ${show(name)}`, true)
    else if (UNSETTABLE_HEADERS.has(name.toLowerCase())) at([...path, name], `the gateway sets ${name} itself; it cannot be added`, true)
    if (typeof headerValue === 'string' && /[\r\n\0]/.test(headerValue)) at([...path, name], 'expected a header value without CR, LF or NUL')
  }
}

function checkRewritePrefix (value: unknown, path: Path, at: (path: Path, message: string) => void): void {
  if (typeof value === 'string' && value !== '' && canonicalPrefix(value) === null) {
    at(path, `expected "" or a plain path like /catalog, got ${show(value)}`)
  }
}

function checkHost (value: unknown, path: Path, at: (path: Path, message: string) => void): void {
  if (typeof value === 'string' && !/^[A-Za-z0-9.-]+$/.test(value)) {
    at(path, `expected a host name without port, like api.example.com, got ${show(value)}`)
  }
}

const DOT_SEGMENT = /^(\.|%2e){1,2}$/i

/** A prefix as routing compares it: no trailing slash (but for `/`); null when it is not a plain path. */
function canonicalPrefix (prefix: string): string | null {
  if (!prefix.startsWith('/') || /[?#]/.test(prefix)) return null
  const trimmed = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
  if (trimmed === '/') return trimmed
  const segments = trimmed.slice(1).split('/')
  return segments.every((segment) => segment !== '' && !DOT_SEGMENT.test(segment)) ? trimmed : null
}

function resolve (raw: ConfigFile, source: string, redisUrl: string | undefined): GatewayConfig {
  const server = raw.server ?? {}
  const resolvedServer: ServerConfig = {
    host: server.host ?? DEFAULT_SERVER_HOST,
    port: server.port ?? DEFAULT_SERVER_PORT,
    bodyLimitBytes: parseSizeBytes(server.bodyLimit ?? DEFAULT_BODY_LIMIT),
    shutdownTimeoutMs: parseDurationMs(server.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT),
    trustProxy: server.trustProxy ?? false,
    maxHeaders: server.maxHeaders ?? DEFAULT_MAX_HEADERS,
    headersTimeoutMs: parseDurationMs(server.headersTimeout ?? DEFAULT_HEADERS_TIMEOUT),
    sendTimeoutMs: parseDurationMs(server.sendTimeout ?? DEFAULT_SEND_TIMEOUT),
    logLevel: server.logLevel ?? DEFAULT_LOG_LEVEL,
    accessLog: server.accessLog ?? true,
    watchConfig: server.watchConfig ?? false,
    tls: server.tls === undefined
      ? null
      : {
          certFile: server.tls.cert,
          keyFile: server.tls.key,
          caFile: server.tls.ca ?? null,
          requestCert: server.tls.requestCert ?? false,
          minVersion: server.tls.minVersion ?? DEFAULT_TLS_MIN_VERSION
        }
  }
  const defaults = raw.defaults ?? {}
  const routes = (raw.routes ?? []).map((route): RouteConfig => {
    const upstream = route.upstream ?? defaults.upstream ?? []
    const bodyLimit = route.bodyLimit ?? defaults.bodyLimit
    const host = route.host ?? defaults.host
    const headers = { ...defaults.headers, ...route.headers }
    // Stored without a trailing slash, and `/` as "", so that rewriting is a plain concatenation.
    const rewritePrefix = route.rewritePrefix ?? defaults.rewritePrefix
    return {
      id: route.id,
      prefix: canonicalPrefix(route.prefix) as string,
      methods: route.methods ?? defaults.methods ?? null,
      host: host === undefined ? null : host.toLowerCase(),
      upstreams: (typeof upstream === 'string' ? [upstream] : upstream).map((url) => new URL(url).origin),
      rewritePrefix: rewritePrefix === undefined ? null : canonicalPrefix(rewritePrefix === '' ? '/' : rewritePrefix)?.replace(/^\/$/, '') ?? null,
      timeoutMs: parseDurationMs(route.timeout ?? defaults.timeout ?? DEFAULT_ROUTE_TIMEOUT),
      headers: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value])),
      websocket: route.websocket ?? defaults.websocket ?? false,
      upstreamTls: upstreamTlsOf(route.upstreamTls ?? defaults.upstreamTls),
      upstreamHttp2: route.upstreamHttp2 ?? defaults.upstreamHttp2 ?? false,
      bodyLimitBytes: bodyLimit === undefined ? resolvedServer.bodyLimitBytes : parseSizeBytes(bodyLimit),
      // A route's breaker and retry blocks refine the defaults' key by key.
      breaker: resolveBreaker({ ...defaults.breaker, ...route.breaker }),
      retry: resolveRetry(route.retry === undefined && defaults.retry === undefined ? null : { ...defaults.retry, ...route.retry }),
      cache: route.cache === undefined && defaults.cache === undefined ? null : resolveCache({ ...defaults.cache, ...route.cache }),
      bulk: route.bulk === undefined ? null : resolveBulk(route.bulk)
    }
  })
  const management = raw.management ?? {}
  return {
    source,
    server: resolvedServer,
    management: {
      token: management.token === undefined || management.token === null || management.token === '' ? null : management.token,
      port: management.port ?? null,
      host: management.host ?? resolvedServer.host,
      showDetails: management.health?.showDetails ?? DEFAULT_SHOW_DETAILS
    },
    redis: resolveRedis(raw.redis ?? (redisUrl === undefined ? undefined : { url: redisUrl })),
    routes,
    autoscaler: resolveAutoscaler(raw.autoscaler ?? {})
  }
}

function resolveAutoscaler (autoscaler: NonNullable<ConfigFile['autoscaler']>): AutoscalerConfig {
  return {
    mode: autoscaler.mode ?? DEFAULT_AUTOSCALER_MODE,
    port: autoscaler.port ?? DEFAULT_AUTOSCALER_PORT,
    intervalMs: parseDurationMs(autoscaler.interval ?? DEFAULT_AUTOSCALER_INTERVAL),
    windowMs: parseDurationMs(autoscaler.window ?? DEFAULT_AUTOSCALER_WINDOW),
    cooldownMs: parseDurationMs(autoscaler.cooldown ?? DEFAULT_AUTOSCALER_COOLDOWN),
    // Key by key: `scaleOut: {cpu: 90}` keeps the default memory threshold.
    scaleOut: { ...DEFAULT_SCALE_OUT, ...autoscaler.scaleOut },
    scaleIn: { ...DEFAULT_SCALE_IN, ...autoscaler.scaleIn },
    minMasters: autoscaler.minMasters ?? DEFAULT_MIN_MASTERS,
    maxMasters: autoscaler.maxMasters ?? DEFAULT_MAX_MASTERS,
    spareNodes: autoscaler.spareNodes ?? [],
    backup: autoscaler.backup ?? true,
    migration: {
      pipeline: autoscaler.migration?.pipeline ?? DEFAULT_MIGRATION_PIPELINE,
      timeoutMs: parseDurationMs(autoscaler.migration?.timeout ?? DEFAULT_MIGRATION_TIMEOUT)
    }
  }
}

function resolveRedis (redis: ConfigFile['redis']): RedisConfig | null {
  if (redis === undefined) return null
  return {
    url: redis.url ?? null,
    cluster: redis.cluster ?? null,
    keyPrefix: redis.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX,
    connectTimeoutMs: parseDurationMs(redis.connectTimeout ?? DEFAULT_REDIS_CONNECT_TIMEOUT),
    commandTimeoutMs: parseDurationMs(redis.commandTimeout ?? DEFAULT_REDIS_COMMAND_TIMEOUT)
  }
}

function resolveCache (cache: NonNullable<NonNullable<ConfigFile['defaults']>['cache']>): CacheConfig {
  return {
    ttlMs: cache.ttl === undefined ? null : parseDurationMs(cache.ttl),
    maxObjectSizeBytes: parseSizeBytes(cache.maxObjectSize ?? DEFAULT_CACHE_MAX_OBJECT_SIZE),
    staleWhileRevalidateMs: cache.staleWhileRevalidate === undefined ? 0 : parseDurationMs(cache.staleWhileRevalidate),
    staleIfErrorMs: cache.staleIfError === undefined ? 0 : parseDurationMs(cache.staleIfError),
    vary: (cache.vary ?? []).map((name) => name.toLowerCase()),
    maxVariants: cache.maxVariants ?? DEFAULT_CACHE_MAX_VARIANTS,
    targetedField: (cache.targetedField ?? DEFAULT_CACHE_TARGETED_FIELD).toLowerCase(),
    memory: cache.memory === undefined
      ? null
      : { maxEntries: cache.memory.maxEntries ?? DEFAULT_MEMORY_TIER_ENTRIES, ttlMs: parseDurationMs(cache.memory.ttl ?? DEFAULT_MEMORY_TIER_TTL) }
  }
}

function resolveBulk (bulk: NonNullable<NonNullable<ConfigFile['routes']>[number]['bulk']>): BulkConfig {
  const retry = bulk.retry ?? {}
  const maxWait = bulk.maxWait ?? DEFAULT_BULK_MAX_WAIT
  return {
    path: bulk.path,
    batchSize: bulk.batchSize ?? DEFAULT_BULK_BATCH_SIZE,
    maxBatchBytes: parseSizeBytes(bulk.maxBatchBytes ?? DEFAULT_BULK_MAX_BATCH_BYTES),
    // The one duration that may be zero (the schema allows it here only); parseDurationMs refuses zero for every other key.
    maxWaitMs: /^0[a-z]+$/.test(maxWait) ? 0 : parseDurationMs(maxWait),
    format: bulk.format ?? DEFAULT_BULK_FORMAT,
    mode: bulk.mode ?? DEFAULT_BULK_MODE,
    concurrency: bulk.concurrency ?? DEFAULT_BULK_CONCURRENCY,
    maxPending: bulk.maxPending ?? DEFAULT_BULK_MAX_PENDING,
    retry: {
      retries: retry.retries ?? DEFAULT_BULK_RETRIES,
      backoffMs: parseDurationMs(retry.backoff ?? DEFAULT_BULK_RETRY_BACKOFF),
      maxBackoffMs: parseDurationMs(retry.maxBackoff ?? DEFAULT_BULK_RETRY_MAX_BACKOFF)
    },
    claimAfterMs: parseDurationMs(bulk.claimAfter ?? DEFAULT_BULK_CLAIM_AFTER)
  }
}

function resolveBreaker (breaker: NonNullable<NonNullable<ConfigFile['defaults']>['breaker']>): BreakerConfig {
  const fallback = breaker.fallback
  return {
    mode: breaker.mode ?? 'enforce',
    failureThreshold: breaker.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD,
    failureRateThreshold: breaker.failureRateThreshold ?? null,
    slidingWindowMs: parseDurationMs(breaker.slidingWindow ?? DEFAULT_SLIDING_WINDOW),
    minimumCalls: breaker.minimumCalls ?? DEFAULT_MINIMUM_CALLS,
    slowCallThresholdMs: parseDurationMs(breaker.slowCallThreshold ?? DEFAULT_SLOW_CALL_THRESHOLD),
    slowCallRateThreshold: breaker.slowCallRateThreshold ?? DEFAULT_SLOW_CALL_RATE_THRESHOLD,
    recoveryTimeoutMs: parseDurationMs(breaker.recoveryTimeout ?? DEFAULT_RECOVERY_TIMEOUT),
    recoveryBackoff: breaker.recoveryBackoff === undefined
      ? null
      : { multiplier: breaker.recoveryBackoff.multiplier, maxMs: parseDurationMs(breaker.recoveryBackoff.max) },
    halfOpenCalls: breaker.halfOpenCalls ?? DEFAULT_HALF_OPEN_CALLS,
    failureStatuses: breaker.failureStatuses ?? DEFAULT_FAILURE_STATUSES,
    fallback: fallback === undefined
      ? null
      : { status: fallback.status, contentType: fallback.contentType ?? DEFAULT_FALLBACK_CONTENT_TYPE, body: fallback.body ?? '' }
  }
}

function resolveRetry (retry: NonNullable<NonNullable<ConfigFile['defaults']>['retry']> | null): RetryConfig {
  const on = retry?.on ?? DEFAULT_RETRY_ON
  return {
    retries: retry === null ? 0 : retry.retries ?? DEFAULT_RETRIES,
    backoffMs: parseDurationMs(retry?.backoff ?? DEFAULT_RETRY_BACKOFF),
    maxBackoffMs: parseDurationMs(retry?.maxBackoff ?? DEFAULT_RETRY_MAX_BACKOFF),
    statuses: on.filter((item): item is number => typeof item === 'number'),
    onConnect: on.includes('connect'),
    onTimeout: on.includes('timeout')
  }
}

/** Freezes `value` and everything it holds: the config a caller gets cannot be changed under the gateway. */
export function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
