// The Redis Cluster autoscaler: measuring masters from INFO, and the pure scale decision.
export * from './measure.js'
export * from './policy.js'
