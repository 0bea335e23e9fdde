// The Redis Cluster autoscaler: measuring masters from INFO, the pure scale decision, and the cluster admin that acts on it.
export * from './measure.js'
export * from './policy.js'
export * from './cluster-nodes.js'
export * from './slot-plan.js'
export * from './cluster-admin.js'
export * from './lease.js'
export * from './journal.js'
export * from './control-loop.js'
