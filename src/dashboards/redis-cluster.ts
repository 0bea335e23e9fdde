// Redis Cluster: the autoscaler's view of the cluster (masters, per-master load), its decisions, the slots and keys it moved, and which instance leads.
import * as common from '@grafana/grafana-foundation-sdk/common'
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import { AUTOSCALER_METRICS } from '../metrics/autoscaler-definitions.js'
import { NODE_METRICS } from './node-metrics.js'
import { breakwaterDashboard, bucketHeatmap, finish, row, stackedSeries, statPanel, stateTimeline, thresholds, timeSeries } from './panels.js'
import { quantile, rate, RATE_INTERVAL, select, sumBy } from './promql.js'

export const REDIS_CLUSTER_UID = 'breakwater-redis-cluster'

const perNode = '{{node}}'
const perInstance = (what: string): string => `${what} {{instance}}`

/**
 * Where the scale thresholds are: in the autoscaler's config, which Prometheus never sees, so the load panels draw
 * the series alone rather than lines that could disagree with the running config.
 */
const THRESHOLDS_NOTE = 'The scale thresholds (autoscaler.scaleOut and autoscaler.scaleIn in the config) are not exported, so no line marks them.'

/**
 * `expr` kept to the autoscaler processes: prom-client's defaults come from gateways too, and with every job chosen
 * (`.*`) the process panels would draw them as well.
 */
const ofAutoscalers = (expr: string): string => `${expr} and on (job, instance) ${select(AUTOSCALER_METRICS.leader)}`

/** 1 on the leader, 0 on a standby: the leader timeline's mapping. */
function leaderMappings (): dashboard.ValueMapping[] {
  return [{
    type: dashboard.MappingType.ValueToText,
    options: {
      0: { text: 'STANDBY', color: 'blue', index: 0 },
      1: { text: 'LEADER', color: 'green', index: 1 }
    }
  }]
}

export function redisClusterDashboard (): dashboard.Dashboard {
  const { masters, nodeCpu, nodeMemory, decisions, slotsMoved, keysMoved, operation, leader, lastAction } = AUTOSCALER_METRICS
  return finish(breakwaterDashboard({
    uid: REDIS_CLUSTER_UID,
    title: 'Breakwater / Redis Cluster',
    description: 'The Redis Cluster autoscaler (`breakwater autoscale`): masters and their CPU and memory, the scale policy\'s decisions, slots and keys migrated, scale operation durations, and which autoscaler instance holds the leader lease.',
    // Every autoscaler exports it from its first scrape, leader or standby; it has no route, so no route variable.
    anchor: leader,
    nodes: nodeMemory
  })
    .withRow(row('Overview'))
    .withPanel(statPanel({
      title: 'Masters',
      description: 'Masters serving slots at the last measurement. No data before an autoscaler has measured the cluster once.',
      unit: 'short',
      span: 4,
      targets: [{ expr: `max(${select(masters)})`, legend: 'masters' }]
    }).thresholds(thresholds('blue')))
    .withPanel(statPanel({
      title: 'Leaders',
      description: 'Autoscaler instances that hold the leader lease: 1 is right; 0 means nothing acts on the cluster, more than 1 that two instances believe they lead.',
      unit: 'short',
      span: 4,
      targets: [{ expr: sumBy([], select(leader)), legend: 'leaders' }]
    }).thresholds(thresholds('red', [{ value: 1, color: 'green' }, { value: 2, color: 'red' }])))
    .withPanel(statPanel({
      title: 'Busiest master CPU',
      description: `The highest CPU of any chosen master, in percent of one core. ${THRESHOLDS_NOTE}`,
      unit: 'percent',
      span: 4,
      targets: [{ expr: `max(${select(nodeCpu)})`, legend: 'CPU' }]
    }).thresholds(thresholds('blue')))
    .withPanel(statPanel({
      title: 'Fullest master memory',
      description: `The highest memory use of any chosen master, in percent of its maxmemory (of the system memory without one). ${THRESHOLDS_NOTE}`,
      unit: 'percent',
      span: 4,
      targets: [{ expr: `max(${select(nodeMemory)})`, legend: 'memory' }]
    }).thresholds(thresholds('blue')))
    .withPanel(statPanel({
      title: 'Since last scale operation',
      description: 'Time since an autoscaler last applied a scale out or scale in. No data before the first one; within the cooldown (autoscaler.cooldown) no other action follows.',
      unit: 's',
      span: 8,
      targets: [{ expr: `time() - max(${select(lastAction)})`, legend: 'since last action' }]
    }).thresholds(thresholds('blue')))
    .withRow(row('Cluster'))
    .withPanel(timeSeries({
      title: 'Masters over time',
      description: 'Masters serving slots, as each autoscaler instance measured them: a step up is a scale out, a step down a scale in (or a master that failed over to none).',
      unit: 'short',
      targets: [{ expr: select(masters), legend: '{{instance}}' }]
    }).min(0).decimals(0))
    .withPanel(stateTimeline({
      title: 'Leader',
      description: 'Which autoscaler instance holds the leader lease over time: the leader measures, decides and acts; a standby takes over when the lease expires.',
      unit: 'none',
      targets: [{ expr: select(leader), legend: '{{instance}}' }]
    }).mappings(leaderMappings()).thresholds(thresholds('text')))
    .withRow(row('Load per master'))
    .withPanel(timeSeries({
      title: 'CPU by node',
      description: `CPU of each master over the last measurement interval, in percent of one core ((used_cpu_sys + used_cpu_user) time over wall time), the highest figure any chosen autoscaler reported. ${THRESHOLDS_NOTE}`,
      unit: 'percent',
      targets: [{ expr: `max by (node) (${select(nodeCpu)})`, legend: perNode }]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Memory by node',
      description: `Memory of each master, in percent of its maxmemory (of the system memory without one), the highest figure any chosen autoscaler reported. ${THRESHOLDS_NOTE}`,
      unit: 'percent',
      targets: [{ expr: `max by (node) (${select(nodeMemory)})`, legend: perNode }]
    }).min(0))
    .withRow(row('Decisions'))
    .withPanel(stackedSeries({
      title: 'Decisions by action',
      description: 'The scale policy\'s decisions per minute (one per instance and interval), by action and whether it was applied: not applied is a hold, a recommend-mode decision, a standby\'s, or one refused by the cooldown or the master limits.',
      unit: 'opm',
      span: 24,
      targets: [{ expr: `60 * ${sumBy(['action', 'applied'], rate(select(decisions)))}`, legend: '{{action}}, applied={{applied}}' }]
    }).min(0))
    .withRow(row('Slots and keys moved'))
    .withPanel(timeSeries({
      title: 'Slots moved',
      description: 'Hash slots migrated from one master to another per second, by the instance that moved them (the leader): non-zero only during a scale operation.',
      unit: 'cps',
      targets: [{ expr: sumBy(['instance'], rate(select(slotsMoved))), legend: perInstance('slots') }]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Keys moved',
      description: 'Keys migrated per second (MIGRATE ... KEYS batches of autoscaler.migration.pipeline keys): the work of a slot move grows with the keys in it.',
      unit: 'cps',
      targets: [{ expr: sumBy(['instance'], rate(select(keysMoved))), legend: perInstance('keys') }]
    }).min(0))
    .withRow(row('Scale operations'))
    .withPanel(timeSeries({
      title: 'Operation duration p50 / p99',
      description: 'How long scale operations took, from the first command to the last slot moved, by action: a point appears in the interval an operation finished, and none in between.',
      unit: 's',
      targets: [0.5, 0.99].map((q) => ({ expr: quantile(q, operation, ['action']), legend: `{{action}} p${Math.round(q * 100)}` }))
    }).min(0).showPoints(common.VisibilityMode.Always))
    .withPanel(bucketHeatmap({
      title: 'Operation duration distribution',
      description: 'Scale operations finished per interval by duration (the redis_autoscaler_operation_seconds buckets, 0.1 s to 30 min): seconds on an empty cluster, minutes when many keys move.',
      unit: 's',
      targets: [{
        expr: sumBy(['le'], `increase(${select(operation, [], '_bucket')}[${RATE_INTERVAL}])`),
        legend: '{{le}}',
        format: 'heatmap'
      }]
    }))
    .withRow(row('Autoscaler process'))
    .withPanel(timeSeries({
      title: 'Autoscaler CPU',
      description: 'CPU time of each autoscaler process per second of wall time, user and system; the Gateway Process dashboard with this job chosen shows the rest of its runtime.',
      unit: 'percentunit',
      targets: [
        { expr: ofAutoscalers(rate(select(NODE_METRICS.cpuUser))), legend: perInstance('user') },
        { expr: ofAutoscalers(rate(select(NODE_METRICS.cpuSystem))), legend: perInstance('system') }
      ]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Autoscaler memory',
      description: 'Resident set size of each autoscaler process: a size that only grows, interval after interval, is a leak.',
      unit: 'bytes',
      targets: [{ expr: ofAutoscalers(select(NODE_METRICS.residentMemory)), legend: perInstance('RSS') }]
    }).min(0)))
}
