// The one place that builds ioredis clients: a standalone Redis or a Cluster, set up to fail at once while Redis is away.
import { once } from 'node:events'
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import { parseRedisAddress, type RedisAddress } from './address.js'

/** The first reconnect attempt waits this long (ms); each next one waits twice as long, up to DEFAULT_RECONNECT_MAX_DELAY_MS. */
export const DEFAULT_RECONNECT_BASE_DELAY_MS = 50
/** The longest wait between two reconnect attempts while Redis is away (ms): how soon the cache is back after Redis is. */
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 1000
/** The name the gateway's connections carry in CLIENT LIST. */
export const REDIS_CONNECTION_NAME = 'breakwater'

export interface RedisClientOptions {
  /**
   * A standalone Redis: `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. Exactly one of `url`
   * and `cluster` is set.
   */
  readonly url?: string | null
  /**
   * Redis Cluster startup nodes, `redis://[[user]:password@]host[:port]` or `rediss://` each; the other nodes are
   * discovered. They must all use the same scheme and credentials, which every discovered node is then given too.
   */
  readonly cluster?: readonly string[] | null
  /**
   * The prefix of every key the cache writes. Carried along, never applied: ioredis' own `keyPrefix` option is not used
   * because the cache passes full keys (hash tags and SCAN MATCH patterns must see the whole key).
   */
  readonly keyPrefix: string
  /** How long one connection attempt may take (ms); a longer one fails and is retried in the background. */
  readonly connectTimeoutMs: number
  /**
   * A command not answered within this time is rejected (ms): ioredis' `commandTimeout`, for every command of this
   * client. A client for slow admin commands (MIGRATE) needs its own, larger value.
   */
  readonly commandTimeoutMs: number
  /**
   * Connection errors as ioredis emits them (refused, reset, auth); commands fail on their own either way.
   * @default ignored (ioredis would print them to the console without a listener)
   */
  readonly onError?: (error: Error) => void
}

interface ConnectionBase {
  /** `keyPrefix` from the options. */
  readonly keyPrefix: string
  /**
   * Holds what is written to Redis for the rest of this event-loop turn, and writes it at once at the turn's end (a
   * cork on the socket until setImmediate): the lookups of one turn, one per request, then cost one write instead
   * of one each. Measured on cache hits from Redis, a write per command cost as much CPU as the answer to the client.
   * ioredis' own enableAutoPipelining does this too, but lets one pipeline be in flight at a time, and measured here
   * took p99 at -c8 from 0.9 ms to 6.7 ms. Standalone only; in a Cluster each command goes to its node's connection.
   */
  coalesceWrites: () => void
  /** Disconnects at once; commands still pending are rejected. Safe to call twice. */
  close: () => Promise<void>
}

/** What `createRedisClient` builds: a tagged union, so that only a Cluster connection offers `Cluster`'s API. */
export type RedisConnection =
  | ConnectionBase & {
    readonly kind: 'standalone'
    readonly client: Redis
    /** The one connection, as a list: purges SCAN every master. */
    masters: () => Redis[]
  }
  | ConnectionBase & {
    readonly kind: 'cluster'
    readonly client: Cluster
    /** A connection to each master the Cluster knows now (its slot map changes with resharding): purges SCAN each. */
    masters: () => Redis[]
  }

/**
 * ioredis' `retryStrategy`: reconnect in the background for as long as it takes, waiting 50, 100, 200... ms between
 * attempts, capped at DEFAULT_RECONNECT_MAX_DELAY_MS.
 * @param attempt 1 for the first reconnect attempt
 */
export function reconnectDelayMs (attempt: number): number {
  // The exponent is capped so that a Redis away for days never makes 2 ** attempt overflow to Infinity.
  return Math.min(DEFAULT_RECONNECT_BASE_DELAY_MS * 2 ** Math.min(Math.max(attempt - 1, 0), 16), DEFAULT_RECONNECT_MAX_DELAY_MS)
}

/** Builds the client `options` describe; it connects in the background and never throws once built. */
export function createRedisClient (options: RedisClientOptions): RedisConnection {
  const { url, cluster, keyPrefix, connectTimeoutMs, commandTimeoutMs, onError } = options
  if (typeof keyPrefix !== 'string') throw new TypeError(`expected options.keyPrefix to be a string, got ${typeof keyPrefix}`)
  positive(connectTimeoutMs, 'connectTimeoutMs')
  positive(commandTimeoutMs, 'commandTimeoutMs')

  const common: RedisOptions = {
    connectTimeout: connectTimeoutMs,
    commandTimeout: commandTimeoutMs,
    connectionName: REDIS_CONNECTION_NAME,
    retryStrategy: reconnectDelayMs,
    // Fail open: while Redis is away a command is rejected at once (no offline queue), commands in flight when the
    // connection drops are rejected then (0 retries), and none is replayed after the reconnect (a late DEL could
    // remove another instance's lock).
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false
  }
  const listen = (emitter: Redis | Cluster): void => {
    emitter.on('error', (error: Error) => onError?.(error))
  }

  if (url != null) {
    if (cluster != null) throw new TypeError('expected exactly one of options.url and options.cluster, got both')
    parseRedisUrl(url, 'options.url')
    const client = new Redis(url, common)
    listen(client)
    return {
      kind: 'standalone',
      client,
      keyPrefix,
      masters: () => [client],
      coalesceWrites: writeCoalescer(client),
      close: () => disconnect(client, connectTimeoutMs)
    }
  }

  if (cluster == null) throw new TypeError('expected exactly one of options.url and options.cluster, got neither')
  if (cluster.length === 0) throw new TypeError('expected options.cluster to list at least one node, got []')
  const nodes = cluster.map((node, i) => parseRedisUrl(node, `options.cluster[${i}]`))
  const first = (nodes[0] as RedisAddress).url
  nodes.forEach(({ url: node }, i) => {
    if (node.protocol !== first.protocol || node.username !== first.username || node.password !== first.password) {
      throw new TypeError(`expected options.cluster[${i}] to use the scheme and credentials of options.cluster[0], got ${redact(cluster[i] as string)}`)
    }
  })
  const clusterOptions: ClusterOptions = {
    // During slot migration a pipelined command can fail with MOVED/ASK instead of being redirected (redis/ioredis#2075).
    enableAutoPipelining: false,
    enableOfflineQueue: false,
    clusterRetryStrategy: reconnectDelayMs,
    // ioredis builds each node's connection with its own retryStrategy (none) and offline queue (on), whatever
    // redisOptions say: a lost node is found again through the slot map, and the Cluster's own queue is off.
    redisOptions: {
      ...common,
      ...(first.username === '' ? {} : { username: decodeURIComponent(first.username) }),
      ...(first.password === '' ? {} : { password: decodeURIComponent(first.password) }),
      ...(first.protocol === 'rediss:' ? { tls: {} } : {})
    }
  }
  const startupNodes = nodes.map(({ host, port }) => ({ host, port }))
  const client = new Cluster(startupNodes, clusterOptions)
  listen(client)
  return {
    kind: 'cluster',
    client,
    keyPrefix,
    masters: () => client.nodes('master'),
    coalesceWrites: () => {},
    close: () => disconnect(client, connectTimeoutMs)
  }
}

/** ConnectionBase.coalesceWrites for one connection. */
function writeCoalescer (client: Redis): () => void {
  let corked: Redis['stream'] | null = null
  const release = (): void => {
    corked?.uncork()
    corked = null
  }
  return () => {
    // Not ready: ioredis refuses the command itself (no offline queue), nothing is written.
    if (corked !== null || client.status !== 'ready') return
    corked = client.stream
    corked.cork()
    // A setImmediate queued while immediates run still keeps the next poll from blocking: the write never waits on I/O.
    setImmediate(release)
  }
}

function positive (value: number, name: string): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new TypeError(`expected options.${name} to be a positive number of milliseconds, got ${String(value)}`)
  }
}

/** Parses a redis:// or rediss:// URL with a host; the error quotes it with the password hidden. */
function parseRedisUrl (value: string, path: string): RedisAddress {
  const address = parseRedisAddress(value)
  if (address === null || address.host === '') {
    throw new TypeError(`expected ${path} to be a redis:// or rediss:// URL, got ${redact(value)}`)
  }
  return address
}

/** The URL as it may be printed: the userinfo's password replaced by `***`. */
function redact (value: string): string {
  return value.replace(/^([^:/]*:\/\/[^:@/]*):[^@/]*@/, '$1:***@')
}

/**
 * Disconnects at once (QUIT would wait for a hung Redis) and waits for `end`, never longer than `boundMs`. Between
 * reconnect attempts no socket is open: disconnect() then only cancels the next attempt, and ioredis emits no `end`
 * (the status stays `reconnecting`, or `disconnecting` for a Cluster that lost every node), so there is nothing to wait for.
 */
async function disconnect (client: Redis | Cluster, boundMs: number): Promise<void> {
  if (client.status === 'end') return
  const open = client instanceof Cluster ? client.nodes().length > 0 : client.status !== 'reconnecting' && client.status !== 'close'
  if (!open) {
    client.disconnect()
    return
  }
  const controller = new AbortController()
  const ended = once(client, 'end', { signal: controller.signal }).catch(() => {})
  const timer = setTimeout(() => controller.abort(), boundMs)
  client.disconnect()
  try {
    await ended
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Resolves once the connection is ready, or after `timeoutMs` whatever its state (a Redis still away is the caller's
 * fail-open case, not a startup failure): the gateway starts listening with its Redis connected when it can be.
 */
export async function readyWithin (connection: Pick<RedisConnection, 'client'>, timeoutMs: number): Promise<void> {
  const client = connection.client
  if (client.status === 'ready') return
  let timer: NodeJS.Timeout | undefined
  await new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs)
    client.once('ready', resolve)
  })
  clearTimeout(timer)
}
