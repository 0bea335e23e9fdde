// Redis addresses: a redis:// or rediss:// URL read into the host and port a connection or CLUSTER NODES uses.

/** The port of a Redis URL that names none. */
export const DEFAULT_REDIS_PORT = 6379

export interface RedisAddress {
  readonly url: URL
  /** The host as a socket takes it: an IPv6 address without its brackets. Empty for a URL without a host. */
  readonly host: string
  /** The URL's port, or DEFAULT_REDIS_PORT when it names none. */
  readonly port: number
  /** `host:port` with the port always present and an IPv6 host in brackets: how the autoscaler names a node. */
  readonly address: string
}

/**
 * A redis:// or rediss:// URL read into its parts; null for anything else. A URL without a host is returned (with an
 * empty `host`): whether that is acceptable is the caller's to say.
 */
export function parseRedisAddress (value: string): RedisAddress | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return null
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return null
  const port = url.port === '' ? DEFAULT_REDIS_PORT : Number(url.port)
  return { url, host: url.hostname.replace(/^\[|\]$/g, ''), port, address: `${url.hostname}:${port}` }
}
