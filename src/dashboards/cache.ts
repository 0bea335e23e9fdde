// Cache: how often the RFC 9111 cache answers, what it serves instead of the upstream, and how its store performs.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard'
import { METRICS } from '../metrics/definitions.js'
import { breakwaterDashboard, finish, fixedColor, row, stackedSeries, statPanel, thresholds, timeSeries } from './panels.js'
import { quantile, rate, select, sumBy } from './promql.js'

export const CACHE_UID = 'breakwater-cache'

/** hits / (hits + misses) per `by`: the share of cacheable requests the cache answered. */
function hitRatio (by: string[]): string {
  const hits = sumBy(by, rate(select(METRICS.cacheHits)))
  return `${hits} / (${hits} + ${sumBy(by, rate(select(METRICS.cacheMisses)))})`
}

export function cacheDashboard (): Dashboard {
  const outcomes = stackedSeries({
    title: 'Hits, misses, stale and bypass',
    description: 'Requests per second on caching routes by X-Cache outcome: HIT (fresh, or REVALIDATED by a 304), MISS (sent upstream), STALE by reason (stale-while-revalidate, upstream error, breaker open) and BYPASS by reason.',
    unit: 'reqps',
    targets: [
      { expr: sumBy([], rate(select(METRICS.cacheHits))), legend: 'hit' },
      { expr: sumBy([], rate(select(METRICS.cacheMisses))), legend: 'miss' },
      { expr: sumBy(['reason'], rate(select(METRICS.cacheStaleServed))), legend: 'stale ({{reason}})' },
      { expr: sumBy(['reason'], rate(select(METRICS.cacheBypass))), legend: 'bypass ({{reason}})' }
    ]
  }).min(0).overrideByName('hit', [fixedColor('green')]).overrideByName('miss', [fixedColor('orange')])

  return finish(breakwaterDashboard({
    uid: CACHE_UID,
    title: 'Breakwater / Cache',
    description: 'The response cache per route: hit ratio, what it served instead of the upstream, and its store\'s latency and errors.',
    anchor: METRICS.cacheHits,
    routes: METRICS.cacheHits
  })
    .withRow(row('Overview'))
    .withPanel(statPanel({
      title: 'Hit ratio',
      description: 'The share of cacheable requests on the chosen routes that the cache answered (HIT or REVALIDATED).',
      unit: 'percentunit',
      span: 8,
      targets: [{ expr: hitRatio([]), legend: 'hit ratio' }]
    }).thresholds(thresholds('red', [{ value: 0.5, color: 'orange' }, { value: 0.8, color: 'green' }])))
    .withPanel(statPanel({
      title: 'Stale served',
      description: 'Stale entries served per second instead of waiting for, or instead of, the upstream.',
      unit: 'reqps',
      span: 8,
      targets: [{ expr: sumBy([], rate(select(METRICS.cacheStaleServed))), legend: 'stale/s' }]
    }).thresholds(thresholds('green')))
    .withPanel(statPanel({
      title: 'Store errors',
      description: 'Cache store operations per second that failed or timed out: the request went on without the cache.',
      unit: 'ops',
      span: 8,
      targets: [{ expr: sumBy([], rate(select(METRICS.cacheErrors))), legend: 'errors/s' }]
    }).thresholds(thresholds('green', [{ value: 0.001, color: 'red' }])))
    .withRow(row('Requests'))
    .withPanel(timeSeries({
      title: 'Hit ratio by route',
      description: 'Per route, the share of cacheable requests the cache answered: hits / (hits + misses).',
      unit: 'percentunit',
      targets: [{ expr: hitRatio(['route']), legend: '{{route}}' }]
    }).min(0).max(1))
    .withPanel(outcomes)
    .withRow(row('Store'))
    .withPanel(timeSeries({
      title: 'Operation latency p99',
      description: 'The 99th percentile of cache store operations by operation (get, set, delete) and store (memory, redis). Past the Redis command timeout the cache is bypassed.',
      unit: 's',
      targets: [{ expr: quantile(0.99, METRICS.cacheOperationLatency, ['operation', 'store']), legend: '{{operation}} {{store}}' }]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Store errors by operation',
      description: 'Cache store operations per second that failed or timed out, by operation.',
      unit: 'ops',
      targets: [{ expr: sumBy(['operation'], rate(select(METRICS.cacheErrors))), legend: '{{operation}}' }]
    }).min(0)))
}
