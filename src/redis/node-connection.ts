// A connection to one node of a Redis Cluster by its host:port, for admin commands the Cluster client cannot route (CLUSTER, MIGRATE, INFO).
import { createRedisClient, readyWithin } from './client.js'

export interface NodeConnectionOptions {
  /** The node's host as the cluster announces it (an IPv6 address without brackets). */
  readonly host: string
  readonly port: number
  /**
   * A URL of the same cluster (`redis.cluster[0]`) whose scheme and credentials every node shares: the node is reached
   * with them. Its host and port are not used.
   * @default redis://
   */
  readonly like?: string
  /** How long the connection may take to be ready (ms). */
  readonly connectTimeoutMs: number
  /**
   * How long one command may take (ms). An admin command can be slow by design: MIGRATE waits up to its own timeout
   * for the target, and a client that gives up first leaves Redis running a command nobody awaits.
   */
  readonly commandTimeoutMs: number
}

/** One node's connection, in the shape the autoscaler's ClusterAdmin and Lease take. */
export interface NodeConnection {
  call: (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown>
  /** Replies as Buffers: for keys, which are bytes and may not be UTF-8. */
  callBuffer: (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown>
  close: () => Promise<void>
}

/**
 * Opens a connection to the node at `host`:`port`, resolving once it is ready or `connectTimeoutMs` has passed (a node
 * that is away then fails each command at once, and is reconnected in the background like every client of src/redis).
 */
export async function connectNode (options: NodeConnectionOptions): Promise<NodeConnection> {
  const { host, port, like = 'redis://', connectTimeoutMs, commandTimeoutMs } = options
  const url = new URL(like)
  // An IPv6 host goes in brackets in a URL.
  url.hostname = host.includes(':') ? `[${host}]` : host
  url.port = String(port)
  url.pathname = ''
  const connection = createRedisClient({ url: url.href, keyPrefix: '', connectTimeoutMs, commandTimeoutMs })
  if (connection.kind !== 'standalone') throw new Error('unreachable: a url makes a standalone connection')
  await readyWithin(connection, connectTimeoutMs)
  const client = connection.client
  return {
    call: async (command, ...args) => client.call(command, args),
    callBuffer: async (command, ...args) => client.callBuffer(command, args),
    close: connection.close
  }
}
