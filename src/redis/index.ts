// The Redis feature: the one factory of ioredis clients, standalone or Cluster.
export * from './client.js'
export * from './node-connection.js'
