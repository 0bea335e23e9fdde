// The Redis feature: the one factory of ioredis clients, standalone or Cluster, and the one reader of Redis URLs.
export * from './address.js'
export * from './client.js'
export * from './node-connection.js'
