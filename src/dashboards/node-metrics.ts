// prom-client's default process and Node.js metrics that the gateway process dashboard reads: not ours to define, so named once here.
import type { MetricType } from '../metrics/definitions.js'

/** A metric the dashboards query: one of METRICS, or one of prom-client's defaults. */
export interface QueriedMetric {
  readonly name: string
  readonly type: MetricType
  readonly labelNames: readonly string[]
}

/**
 * The defaults collectDefaultMetrics() registers (prom-client 15, lib/metrics/*.js) that a dashboard uses; a unit test
 * checks each against a real registry's exposition, so a prom-client upgrade that renames one fails there, not in Grafana.
 */
export const NODE_METRICS = {
  cpuUser: { name: 'process_cpu_user_seconds_total', type: 'counter', labelNames: [] },
  cpuSystem: { name: 'process_cpu_system_seconds_total', type: 'counter', labelNames: [] },
  startTime: { name: 'process_start_time_seconds', type: 'gauge', labelNames: [] },
  residentMemory: { name: 'process_resident_memory_bytes', type: 'gauge', labelNames: [] },
  openFds: { name: 'process_open_fds', type: 'gauge', labelNames: [] },
  maxFds: { name: 'process_max_fds', type: 'gauge', labelNames: [] },
  eventLoopLagP50: { name: 'nodejs_eventloop_lag_p50_seconds', type: 'gauge', labelNames: [] },
  eventLoopLagP99: { name: 'nodejs_eventloop_lag_p99_seconds', type: 'gauge', labelNames: [] },
  eventLoopLagMax: { name: 'nodejs_eventloop_lag_max_seconds', type: 'gauge', labelNames: [] },
  // prom-client names these two gauges `_total`: the total across resource types, next to a per-type gauge.
  activeHandles: { name: 'nodejs_active_handles_total', type: 'gauge', labelNames: [] },
  activeRequests: { name: 'nodejs_active_requests_total', type: 'gauge', labelNames: [] },
  heapUsed: { name: 'nodejs_heap_size_used_bytes', type: 'gauge', labelNames: [] },
  heapTotal: { name: 'nodejs_heap_size_total_bytes', type: 'gauge', labelNames: [] },
  externalMemory: { name: 'nodejs_external_memory_bytes', type: 'gauge', labelNames: [] },
  versionInfo: { name: 'nodejs_version_info', type: 'gauge', labelNames: ['version', 'major', 'minor', 'patch'] },
  gcDuration: { name: 'nodejs_gc_duration_seconds', type: 'histogram', labelNames: ['kind'] }
} as const satisfies Record<string, QueriedMetric>

/** The defaults as a list. */
export const NODE_METRIC_DEFINITIONS: readonly QueriedMetric[] = Object.values(NODE_METRICS)
