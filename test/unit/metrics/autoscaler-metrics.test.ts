// AutoscalerMetrics: the metric contract, what each method does to the exposition, and OpenMetrics.
import { Gauge } from 'prom-client'
import t from 'tap'
import {
  AUTOSCALER_ACTIONS, AUTOSCALER_METRIC_DEFINITIONS, AUTOSCALER_METRICS, AUTOSCALER_OPERATION_BUCKETS_SECONDS, AUTOSCALER_OPERATIONS,
  AutoscalerMetrics, METRIC_DEFINITIONS, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE
} from '../../../src/metrics/index.js'
import { parsePrometheus, series, valueOf, type Exposition } from '../../helpers/prometheus.js'

async function scrape (metrics: AutoscalerMetrics, openMetrics = false): Promise<Exposition> {
  return parsePrometheus(await metrics.metrics(openMetrics))
}

t.test('names, types and labels are exactly the issue\'s', async (t) => {
  t.same(Object.fromEntries(AUTOSCALER_METRIC_DEFINITIONS.map((d) => [d.name, [d.type, ...d.labelNames]])), {
    redis_cluster_masters: ['gauge'],
    redis_node_cpu_percent: ['gauge', 'node'],
    redis_node_memory_percent: ['gauge', 'node'],
    redis_autoscaler_decisions_total: ['counter', 'action', 'applied'],
    redis_autoscaler_slots_moved_total: ['counter'],
    redis_autoscaler_keys_moved_total: ['counter'],
    redis_autoscaler_operation_seconds: ['histogram', 'action'],
    redis_autoscaler_leader: ['gauge'],
    redis_autoscaler_last_action_timestamp_seconds: ['gauge']
  })
  t.same(AUTOSCALER_ACTIONS, ['scale_out', 'scale_in', 'hold'])
  t.same(AUTOSCALER_OPERATIONS, ['scale_out', 'scale_in'])
})

t.test('every definition is well formed, and none is the gateway\'s', async (t) => {
  const gateway = new Set(METRIC_DEFINITIONS.map((d) => d.name))
  for (const def of AUTOSCALER_METRIC_DEFINITIONS) {
    t.match(def.name, /^[a-z_][a-z0-9_]*$/, def.name)
    t.ok(def.help.length > 0, `${def.name} has help`)
    t.notOk(gateway.has(def.name), `${def.name} is not in the gateway's METRICS: the autoscaler is another process`)
    if (def.type === 'counter') t.match(def.name, /_total$/, `${def.name}: counters end in _total`)
    if (def.type !== 'histogram') t.equal(def.buckets, undefined, `${def.name}: only histograms have buckets`)
  }
  const buckets = AUTOSCALER_METRICS.operation.buckets
  t.equal(buckets, AUTOSCALER_OPERATION_BUCKETS_SECONDS)
  t.ok(buckets.every((b, i) => i === 0 || b > (buckets[i - 1] as number)), 'buckets ascend')
  t.equal(buckets[0], 0.1, 'from 0.1 s ...')
  t.equal(buckets.at(-1), 1800, '... to 30 min')
})

t.test('the first scrape shows every family as defined, the decision series at zero, and nothing unmeasured', async (t) => {
  const m = await scrape(new AutoscalerMetrics({ defaultMetrics: false }))
  for (const def of AUTOSCALER_METRIC_DEFINITIONS) {
    t.equal(m.types.get(def.name), def.type, `${def.name} is exported as a ${def.type}`)
    t.equal(m.help.get(def.name), def.help)
  }
  const decisions = series(m, 'redis_autoscaler_decisions_total')
  t.same(decisions.map((s) => [s.labels.action, s.labels.applied, s.value]), [
    ['scale_out', 'true', 0], ['scale_out', 'false', 0], ['scale_in', 'true', 0], ['scale_in', 'false', 0], ['hold', 'true', 0], ['hold', 'false', 0]
  ], 'every action x applied, so rate() and absent() work from the first scrape')
  t.equal(valueOf(m, 'redis_autoscaler_slots_moved_total'), 0)
  t.equal(valueOf(m, 'redis_autoscaler_keys_moved_total'), 0)
  t.equal(valueOf(m, 'redis_autoscaler_leader'), 0, 'no process is the leader until it says so')
  t.same(series(m, 'redis_autoscaler_operation_seconds_count').map((s) => [s.labels.action, s.value]), [['scale_out', 0], ['scale_in', 0]])
  t.equal(series(m, 'redis_cluster_masters').length, 0, 'no masters figure before the first measurement (0 would be a lie)')
  t.equal(series(m, 'redis_autoscaler_last_action_timestamp_seconds').length, 0, 'no last action before the first one')
  t.equal(series(m, 'redis_node_cpu_percent').length + series(m, 'redis_node_memory_percent').length, 0)
  t.equal(series(m, 'process_cpu_seconds_total').length, 0, 'without the default metrics when told')
})

t.test('masters, leader and last action are set as given', async (t) => {
  const metrics = new AutoscalerMetrics({ defaultMetrics: false })
  metrics.setMasters(3)
  metrics.setLeader(true)
  metrics.setLastAction(1_796_000_000.5)
  let m = await scrape(metrics)
  t.equal(valueOf(m, 'redis_cluster_masters'), 3)
  t.equal(valueOf(m, 'redis_autoscaler_leader'), 1)
  t.equal(valueOf(m, 'redis_autoscaler_last_action_timestamp_seconds'), 1_796_000_000.5)

  metrics.setMasters(4)
  metrics.setLeader(false)
  metrics.setLastAction(1_796_000_600)
  m = await scrape(metrics)
  t.equal(valueOf(m, 'redis_cluster_masters'), 4)
  t.equal(valueOf(m, 'redis_autoscaler_leader'), 0, 'a lost lease shows')
  t.equal(valueOf(m, 'redis_autoscaler_last_action_timestamp_seconds'), 1_796_000_600)
})

t.test('node load: one series per node, removed when unknown or when the node left', async (t) => {
  const metrics = new AutoscalerMetrics({ defaultMetrics: false })
  const cpu = (m: Exposition): Record<string, number> =>
    Object.fromEntries(series(m, 'redis_node_cpu_percent').map((s) => [s.labels.node as string, s.value]))
  const memory = (m: Exposition): Record<string, number> =>
    Object.fromEntries(series(m, 'redis_node_memory_percent').map((s) => [s.labels.node as string, s.value]))

  metrics.setNodeLoad('10.0.0.1:6379', 42.5, 61)
  metrics.setNodeLoad('10.0.0.2:6379', 130, 12.25)
  metrics.setNodeLoad('10.0.0.3:6379', null, 30)
  let m = await scrape(metrics)
  t.same(cpu(m), { '10.0.0.1:6379': 42.5, '10.0.0.2:6379': 130 }, 'an unknown CPU figure has no series; above 100 with io-threads is fine')
  t.same(memory(m), { '10.0.0.1:6379': 61, '10.0.0.2:6379': 12.25, '10.0.0.3:6379': 30 })

  // The next interval: node 1 restarted (CPU unknown), node 2's memory became unknown, node 3 learnt its CPU.
  metrics.setNodeLoad('10.0.0.1:6379', null, 63)
  metrics.setNodeLoad('10.0.0.2:6379', 80, null)
  metrics.setNodeLoad('10.0.0.3:6379', 5, 31)
  m = await scrape(metrics)
  t.same(cpu(m), { '10.0.0.2:6379': 80, '10.0.0.3:6379': 5 }, 'a figure that no longer holds is removed, not left behind')
  t.same(memory(m), { '10.0.0.1:6379': 63, '10.0.0.3:6379': 31 })

  // Node 2 was scaled in: it is gone from both gauges; the others keep theirs.
  metrics.retainNodes(['10.0.0.1:6379', '10.0.0.3:6379'])
  m = await scrape(metrics)
  t.same(cpu(m), { '10.0.0.3:6379': 5 })
  t.same(memory(m), { '10.0.0.1:6379': 63, '10.0.0.3:6379': 31 })

  // A node with both figures unknown has no series; one that left and came back is reported anew.
  metrics.setNodeLoad('10.0.0.1:6379', null, null)
  metrics.setNodeLoad('10.0.0.2:6379', 7, 8)
  m = await scrape(metrics)
  t.same(cpu(m), { '10.0.0.3:6379': 5, '10.0.0.2:6379': 7 })
  t.same(memory(m), { '10.0.0.3:6379': 31, '10.0.0.2:6379': 8 })

  metrics.retainNodes(new Set())
  m = await scrape(metrics)
  t.same([cpu(m), memory(m)], [{}, {}], 'an empty cluster view drops every node series')
  t.equal(m.types.get('redis_node_cpu_percent'), 'gauge', 'the families stay declared')
})

t.test('decisions, moved slots and keys are counted', async (t) => {
  const metrics = new AutoscalerMetrics({ defaultMetrics: false })
  metrics.countDecision('hold', false)
  metrics.countDecision('hold', false)
  metrics.countDecision('scale_out', true)
  metrics.countDecision('scale_in', false)
  metrics.countSlotsMoved(4096)
  metrics.countSlotsMoved(0)
  metrics.countKeysMoved(120_000)
  let m = await scrape(metrics)
  const decision = (action: string, applied: string): number => valueOf(m, 'redis_autoscaler_decisions_total', { action, applied })
  t.equal(decision('hold', 'false'), 2)
  t.equal(decision('scale_out', 'true'), 1)
  t.equal(decision('scale_in', 'false'), 1)
  t.equal(decision('scale_in', 'true'), 0)
  t.equal(series(m, 'redis_autoscaler_decisions_total').length, 6, 'no series beyond the declared ones')
  t.equal(valueOf(m, 'redis_autoscaler_slots_moved_total'), 4096)
  t.equal(valueOf(m, 'redis_autoscaler_keys_moved_total'), 120_000)

  metrics.countSlotsMoved(1)
  metrics.countKeysMoved(5)
  metrics.countDecision('hold', false)
  m = await scrape(metrics)
  t.equal(valueOf(m, 'redis_autoscaler_slots_moved_total'), 4097, 'counts add up across scrapes')
  t.equal(valueOf(m, 'redis_autoscaler_keys_moved_total'), 120_005)
  t.equal(decision('hold', 'false'), 3)
})

t.test('operations are timed in buckets from 0.1 s to 30 min', async (t) => {
  const metrics = new AutoscalerMetrics({ defaultMetrics: false })
  for (const seconds of [0.05, 0.1, 0.10001, 1800, 1800.5]) metrics.observeOperation('scale_out', seconds)
  metrics.observeOperation('scale_in', 95)
  const m = await scrape(metrics)
  const out = { action: 'scale_out' }
  const bucket = (le: string): number => valueOf(m, 'redis_autoscaler_operation_seconds_bucket', { ...out, le })
  t.same(series(m, 'redis_autoscaler_operation_seconds_bucket', out).map((s) => s.labels.le),
    [...AUTOSCALER_OPERATION_BUCKETS_SECONDS.map(String), '+Inf'])
  t.equal(bucket('0.1'), 2, 'a value on a bound counts in that bound')
  t.equal(bucket('0.25'), 3, 'just past it, in the next one')
  t.equal(bucket('1800'), 4)
  t.equal(bucket('+Inf'), 5, 'past 30 min, in +Inf only')
  t.equal(valueOf(m, 'redis_autoscaler_operation_seconds_count', out), 5)
  t.ok(Math.abs(valueOf(m, 'redis_autoscaler_operation_seconds_sum', out) - 3600.75001) < 1e-6)
  t.equal(valueOf(m, 'redis_autoscaler_operation_seconds_bucket', { action: 'scale_in', le: '60' }), 0)
  t.equal(valueOf(m, 'redis_autoscaler_operation_seconds_bucket', { action: 'scale_in', le: '120' }), 1)
})

t.test('figures that are not numbers, negative or (for counts) fractional are refused and change nothing', async (t) => {
  const metrics = new AutoscalerMetrics({ defaultMetrics: false })
  metrics.setMasters(3)
  metrics.setNodeLoad('n1:6379', 10, 20)
  t.throws(() => { metrics.setMasters(2.5) }, new RangeError('expected masters to be a whole number >= 0, got 2.5'))
  t.throws(() => { metrics.setMasters(-1) }, RangeError)
  t.throws(() => { metrics.countSlotsMoved(NaN) }, new RangeError('expected the slots moved to be a whole number >= 0, got NaN'))
  t.throws(() => { metrics.countSlotsMoved(-3) }, RangeError, 'a counter never goes down')
  t.throws(() => { metrics.countKeysMoved(Infinity) }, new RangeError('expected the keys moved to be a whole number >= 0, got Infinity'))
  t.throws(() => { metrics.observeOperation('scale_in', NaN) }, new RangeError('expected seconds to be a finite number >= 0, got NaN'))
  t.throws(() => { metrics.observeOperation('scale_in', -0.5) }, RangeError)
  t.throws(() => { metrics.setNodeLoad('n1:6379', NaN, 50) }, new RangeError('expected cpuPercent to be a finite number >= 0, got NaN'))
  t.throws(() => { metrics.setNodeLoad('n1:6379', 15, -1) }, new RangeError('expected memoryPercent to be a finite number >= 0, got -1'))
  t.throws(() => { metrics.setLastAction(Infinity) }, new RangeError('expected epochSeconds to be a finite number >= 0, got Infinity'))
  const m = await scrape(metrics)
  t.equal(valueOf(m, 'redis_cluster_masters'), 3)
  t.equal(valueOf(m, 'redis_autoscaler_slots_moved_total'), 0)
  t.equal(valueOf(m, 'redis_autoscaler_keys_moved_total'), 0)
  t.equal(valueOf(m, 'redis_autoscaler_operation_seconds_count', { action: 'scale_in' }), 0)
  t.equal(valueOf(m, 'redis_node_cpu_percent', { node: 'n1:6379' }), 10, 'a valid CPU figure beside a refused memory one is not written either')
  t.equal(valueOf(m, 'redis_node_memory_percent', { node: 'n1:6379' }), 20)
  t.equal(series(m, 'redis_autoscaler_last_action_timestamp_seconds').length, 0)
})

t.test('OpenMetrics on request, without disturbing the Prometheus text', async (t) => {
  const metrics = new AutoscalerMetrics()
  metrics.countDecision('scale_out', true)
  metrics.countSlotsMoved(10)
  metrics.setLeader(true)
  t.equal(metrics.contentType(false), PROMETHEUS_CONTENT_TYPE)
  t.equal(metrics.contentType(true), OPENMETRICS_CONTENT_TYPE)

  // Both at once: the OpenMetrics rendering renames counters while it runs.
  const [open, prom] = await Promise.all([metrics.metrics(true), metrics.metrics(false)])
  const om = parsePrometheus(open)
  t.ok(om.eof, 'OpenMetrics ends with # EOF')
  t.equal(om.types.get('redis_autoscaler_decisions'), 'counter', 'OpenMetrics names the counter family without _total')
  t.equal(valueOf(om, 'redis_autoscaler_decisions_total', { action: 'scale_out', applied: 'true' }), 1)
  t.equal(valueOf(om, 'redis_autoscaler_slots_moved_total'), 10)
  t.equal(valueOf(om, 'redis_autoscaler_leader'), 1)
  t.equal(om.types.get('redis_autoscaler_operation_seconds'), 'histogram')

  for (const text of [prom, await metrics.metrics(false)]) {
    const m = parsePrometheus(text)
    t.notOk(m.eof)
    for (const def of AUTOSCALER_METRIC_DEFINITIONS) t.equal(m.types.get(def.name), def.type, `${def.name}: the text format keeps its name`)
    t.equal(valueOf(m, 'redis_autoscaler_slots_moved_total'), 10)
    t.equal(m.types.get('process_cpu_seconds_total'), 'counter', 'with the default process metrics, their counters renamed back too')
    t.equal(series(m, 'nodejs_eventloop_lag_seconds').length, 1, 'and the Node.js ones')
  }
})

t.test('a failing scrape does not stop the next one', async (t) => {
  const metrics = new AutoscalerMetrics({ defaultMetrics: false })
  let fail = true
  // A collector that throws, registered beside ours: the scrapes that queue behind it still run.
  const probe = new Gauge({
    name: 'probe',
    help: 'fails on request',
    registers: [metrics.registry],
    collect: () => {
      if (fail) throw new Error('boom')
      probe.set(1)
    }
  })
  const first = metrics.metrics(true)
  const second = metrics.metrics()
  await t.rejects(first, /boom/)
  await t.rejects(second, /boom/)
  fail = false
  metrics.setMasters(5)
  const m = await scrape(metrics)
  t.equal(valueOf(m, 'redis_cluster_masters'), 5)
  t.equal(m.types.get('redis_autoscaler_decisions_total'), 'counter', 'a failed OpenMetrics rendering left the names as registered')
})
