// The autoscaler's metric definitions: its own process and /actuator/prometheus, so a table apart from the gateway's METRICS.
import type { MetricDefinition } from './definitions.js'

/** `action` of redis_autoscaler_decisions_total: the scale policy's three answers. */
export const AUTOSCALER_ACTIONS = ['scale_out', 'scale_in', 'hold'] as const
export type AutoscalerAction = typeof AUTOSCALER_ACTIONS[number]
/** `action` of redis_autoscaler_operation_seconds: the decisions that move slots (a hold does nothing to time). */
export const AUTOSCALER_OPERATIONS = ['scale_out', 'scale_in'] as const satisfies readonly AutoscalerAction[]
export type AutoscalerOperation = typeof AUTOSCALER_OPERATIONS[number]

/**
 * Scale operation buckets in seconds: adding or draining a master migrates thousands of slots key by key, from well
 * under a second on an empty cluster to tens of minutes on a full one; past 30 min it counts in +Inf only.
 */
export const AUTOSCALER_OPERATION_BUCKETS_SECONDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800] as const

/** Every metric the autoscaler exports besides prom-client's default process and Node.js metrics. */
export const AUTOSCALER_METRICS = {
  masters: {
    name: 'redis_cluster_masters',
    help: 'Masters serving slots in the Redis Cluster, at the last measurement',
    type: 'gauge',
    labelNames: []
  },
  nodeCpu: {
    // `node` is host:port as the cluster announces it; no series while the figure is unknown (first sample, a restart).
    name: 'redis_node_cpu_percent',
    help: 'CPU used by a master over the last interval, in percent of one core, by node',
    type: 'gauge',
    labelNames: ['node']
  },
  nodeMemory: {
    name: 'redis_node_memory_percent',
    help: 'Memory used by a master, in percent of its maxmemory (or of the system memory without one), by node',
    type: 'gauge',
    labelNames: ['node']
  },
  decisions: {
    name: 'redis_autoscaler_decisions_total',
    help: 'Decisions of the scale policy, by action (scale_out, scale_in, hold) and whether it was applied',
    type: 'counter',
    labelNames: ['action', 'applied']
  },
  slotsMoved: {
    name: 'redis_autoscaler_slots_moved_total',
    help: 'Hash slots migrated from one master to another by the autoscaler',
    type: 'counter',
    labelNames: []
  },
  keysMoved: {
    name: 'redis_autoscaler_keys_moved_total',
    help: 'Keys migrated from one master to another by the autoscaler',
    type: 'counter',
    labelNames: []
  },
  operation: {
    name: 'redis_autoscaler_operation_seconds',
    help: 'Duration of scale operations, from the first command to the last slot moved, by action',
    type: 'histogram',
    labelNames: ['action'],
    buckets: AUTOSCALER_OPERATION_BUCKETS_SECONDS
  },
  leader: {
    name: 'redis_autoscaler_leader',
    help: '1 on the autoscaler that holds the leader lease, 0 on the others',
    type: 'gauge',
    labelNames: []
  },
  lastAction: {
    name: 'redis_autoscaler_last_action_timestamp_seconds',
    help: 'When the last scale operation was applied, in seconds since the Unix epoch; absent before the first one',
    type: 'gauge',
    labelNames: []
  }
} as const satisfies Record<string, MetricDefinition>

export type AutoscalerMetricKey = keyof typeof AUTOSCALER_METRICS

/** The definitions as a list, in table order: what the autoscaler's registry, dashboards and drift tests iterate. */
export const AUTOSCALER_METRIC_DEFINITIONS: readonly MetricDefinition[] = Object.values(AUTOSCALER_METRICS)
