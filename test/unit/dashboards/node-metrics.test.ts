// The prom-client defaults the process panels read are what a real registry exports (the gateway's and the autoscaler's), with those types and labels.
import t from 'tap'
import { NODE_METRIC_DEFINITIONS, NODE_METRICS } from '../../../src/dashboards/index.js'
import {
  AUTOSCALER_METRIC_DEFINITIONS, AutoscalerMetrics, GatewayMetrics, METRIC_DEFINITIONS
} from '../../../src/metrics/index.js'
import { parsePrometheus, series } from '../../helpers/prometheus.js'
import { waitUntil } from '../../helpers/wait.js'

t.test('each default the dashboards name is in GatewayMetrics\' exposition, with its type and labels', async (t) => {
  const metrics = new GatewayMetrics()
  // nodejs_gc_duration_seconds has samples only once a collection was observed: make garbage until one is.
  let garbage: unknown[] = []
  await waitUntil(async () => {
    for (let i = 0; i < 10_000; i++) garbage.push({ i, text: `item ${i}` })
    garbage = []
    return series(parsePrometheus(await metrics.metrics()), 'nodejs_gc_duration_seconds_count').length > 0
  }, 'a garbage collection to be observed')

  const exposition = parsePrometheus(await metrics.metrics())
  for (const def of NODE_METRIC_DEFINITIONS) {
    t.equal(exposition.types.get(def.name), def.type, `${def.name} is a ${def.type}`)
    const sample = def.type === 'histogram' ? `${def.name}_count` : def.name
    const found = series(exposition, sample)
    t.ok(found.length > 0, `${sample} has samples`)
    for (const label of def.labelNames) t.ok(found.every((s) => label in s.labels), `${sample} is labelled ${label}`)
  }
})

t.test('the defaults the Redis Cluster dashboard reads are in AutoscalerMetrics\' exposition too', async (t) => {
  const exposition = parsePrometheus(await new AutoscalerMetrics().metrics())
  for (const def of [NODE_METRICS.cpuUser, NODE_METRICS.cpuSystem, NODE_METRICS.residentMemory]) {
    t.equal(exposition.types.get(def.name), def.type, `${def.name} is a ${def.type}`)
    t.ok(series(exposition, def.name).length > 0, `${def.name} has samples`)
  }
})

t.test('no default shares a name with a metric of ours, the gateway\'s or the autoscaler\'s', async (t) => {
  const ours = new Set([...METRIC_DEFINITIONS, ...AUTOSCALER_METRIC_DEFINITIONS].map((d) => d.name))
  for (const def of NODE_METRIC_DEFINITIONS) t.notOk(ours.has(def.name), def.name)
})
