// Gateway process: the Node.js runtime under the gateway, from prom-client's default metrics (event loop, heap, RSS, CPU,
// handles), and its config reloads.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard'
import { METRICS } from '../metrics/definitions.js'
import { NODE_METRICS } from './node-metrics.js'
import { breakwaterDashboard, finish, row, statPanel, thresholds, timeSeries } from './panels.js'
import { rate, RATE_INTERVAL, select, sumBy } from './promql.js'

export const GATEWAY_PROCESS_UID = 'breakwater-process'

const perInstance = (what: string): string => `${what} {{instance}}`

export function gatewayProcessDashboard (): Dashboard {
  return finish(breakwaterDashboard({
    uid: GATEWAY_PROCESS_UID,
    title: 'Breakwater / Gateway Process',
    description: 'The Node.js process of each gateway instance: event-loop lag, memory, CPU, handles and garbage collection (prom-client\'s default metrics).',
    // Every process with prom-client's defaults exports it, traffic or not; the route filter is kept only for the links.
    anchor: NODE_METRICS.versionInfo,
    routes: METRICS.transactions
  })
    .withRow(row('Overview'))
    .withPanel(statPanel({
      title: 'Uptime',
      description: 'Time since each instance\'s process started: a reset shows a restart.',
      unit: 's',
      span: 8,
      targets: [{ expr: `time() - ${select(NODE_METRICS.startTime)}`, legend: '{{instance}}' }]
    }).thresholds(thresholds('orange', [{ value: 300, color: 'green' }])))
    .withPanel(statPanel({
      title: 'Event-loop lag p99',
      description: 'The worst instance\'s 99th percentile event-loop delay: every request on that instance waits at least this long for its turn.',
      unit: 's',
      span: 8,
      targets: [{ expr: `max(${select(NODE_METRICS.eventLoopLagP99)})`, legend: 'p99' }]
    }).thresholds(thresholds('green', [{ value: 0.05, color: 'orange' }, { value: 0.2, color: 'red' }])))
    .withPanel(statPanel({
      title: 'Resident memory',
      description: 'The largest resident set size among the chosen instances.',
      unit: 'bytes',
      span: 8,
      targets: [{ expr: `max(${select(NODE_METRICS.residentMemory)})`, legend: 'RSS' }]
    }).thresholds(thresholds('green')))
    .withRow(row('Event loop and CPU'))
    .withPanel(timeSeries({
      title: 'Event-loop lag',
      description: 'Event-loop delay per instance (perf_hooks.monitorEventLoopDelay): p50, p99 and max since the previous scrape. A lag that grows with load means the process is CPU bound.',
      unit: 's',
      targets: [
        { expr: select(NODE_METRICS.eventLoopLagP50), legend: perInstance('p50') },
        { expr: select(NODE_METRICS.eventLoopLagP99), legend: perInstance('p99') },
        { expr: select(NODE_METRICS.eventLoopLagMax), legend: perInstance('max') }
      ]
    }).min(0))
    .withPanel(timeSeries({
      title: 'CPU',
      description: 'CPU time per second of wall time, user and system: 100% is one core, all Node.js can use for JavaScript.',
      unit: 'percentunit',
      targets: [
        { expr: rate(select(NODE_METRICS.cpuUser)), legend: perInstance('user') },
        { expr: rate(select(NODE_METRICS.cpuSystem)), legend: perInstance('system') }
      ]
    }).min(0))
    .withRow(row('Memory'))
    .withPanel(timeSeries({
      title: 'Heap',
      description: 'V8 heap used and its current size per instance; used climbing after every GC is a leak.',
      unit: 'bytes',
      targets: [
        { expr: select(NODE_METRICS.heapUsed), legend: perInstance('used') },
        { expr: select(NODE_METRICS.heapTotal), legend: perInstance('total') }
      ]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Resident memory (RSS)',
      description: 'Resident set size per instance, heap and everything else (buffers, native code), and the memory of Buffers and other objects outside the V8 heap.',
      unit: 'bytes',
      targets: [
        { expr: select(NODE_METRICS.residentMemory), legend: perInstance('RSS') },
        { expr: select(NODE_METRICS.externalMemory), legend: perInstance('external') }
      ]
    }).min(0))
    .withRow(row('Handles and GC'))
    .withPanel(timeSeries({
      title: 'Open handles',
      description: 'Active libuv handles (sockets, servers, timers) and requests per instance: client and upstream connections show here; a count that only grows is a leak.',
      unit: 'short',
      span: 8,
      targets: [
        { expr: select(NODE_METRICS.activeHandles), legend: perInstance('handles') },
        { expr: select(NODE_METRICS.activeRequests), legend: perInstance('requests') }
      ]
    }).min(0))
    .withPanel(timeSeries({
      title: 'File descriptors',
      description: 'Open file descriptors per instance against the process limit: every socket takes one (Linux only).',
      unit: 'short',
      span: 8,
      targets: [
        { expr: select(NODE_METRICS.openFds), legend: perInstance('open') },
        { expr: select(NODE_METRICS.maxFds), legend: perInstance('limit') }
      ]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Time in GC',
      description: 'The share of wall time each instance spent in garbage collection, by kind (minor, major, incremental, weakcb).',
      unit: 'percentunit',
      span: 8,
      targets: [{ expr: sumBy(['instance', 'kind'], rate(select(NODE_METRICS.gcDuration, [], '_sum'))), legend: '{{kind}} {{instance}}' }]
    }).min(0))
    .withRow(row('Config reloads'))
    .withPanel(statPanel({
      title: 'Config generation',
      description: 'The generation of the config each instance serves: 1 at its start, one more at each successful reload. Instances that differ serve different configs.',
      unit: 'short',
      span: 8,
      targets: [{ expr: select(METRICS.configGeneration), legend: '{{instance}}' }]
    }).thresholds(thresholds('blue')))
    .withPanel(timeSeries({
      title: 'Reloads',
      description: 'Config reloads per instance (SIGHUP, POST /actuator/refresh, a watched file change), by result: a failure left the old config serving.',
      unit: 'short',
      span: 8,
      targets: [{ expr: sumBy(['instance', 'result'], `increase(${select(METRICS.configReloads)}[${RATE_INTERVAL}])`), legend: '{{result}} {{instance}}' }]
    }).min(0))
    .withPanel(statPanel({
      title: 'Since the config was loaded',
      description: 'Time since each instance loaded the config it serves (its start, or its last successful reload).',
      unit: 's',
      span: 8,
      targets: [{ expr: `time() - ${select(METRICS.configLastReloadSuccess)}`, legend: '{{instance}}' }]
    }).thresholds(thresholds('green'))))
}
