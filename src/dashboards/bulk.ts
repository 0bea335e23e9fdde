// Bulk: single writes coalesced into batches, from accepted to delivered, and what is still pending or dead-lettered.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard'
import { METRICS, type BulkItemOutcome } from '../metrics/definitions.js'
import { breakwaterDashboard, bucketHeatmap, finish, fixedColor, row, stackedSeries, statPanel, thresholds, timeSeries } from './panels.js'
import { quantile, rate, RATE_INTERVAL, select, sumBy } from './promql.js'

export const BULK_UID = 'breakwater-bulk'

const items = METRICS.bulkItems
const outcomes = (...some: BulkItemOutcome[]): string[] => [`outcome=~"${some.join('|')}"`]
const itemRate = (outcome: BulkItemOutcome): string => sumBy([], rate(select(items, [`outcome="${outcome}"`])))

export function bulkDashboard (): Dashboard {
  return finish(breakwaterDashboard({
    uid: BULK_UID,
    title: 'Breakwater / Bulk',
    description: 'Bulk routes: single writes taken in and delivered in batches, batch sizes and flush latency, and the backlog.',
    anchor: items,
    routes: items
  })
    .withRow(row('Overview'))
    .withPanel(statPanel({
      title: 'Accepted',
      description: 'Single writes taken in per second on the chosen bulk routes.',
      unit: 'cps',
      span: 6,
      targets: [{ expr: itemRate('accepted'), legend: 'accepted/s' }]
    }).thresholds(thresholds('blue')))
    .withPanel(statPanel({
      title: 'Delivered',
      description: 'Single writes the upstream took, per second.',
      unit: 'cps',
      span: 6,
      targets: [{ expr: itemRate('delivered'), legend: 'delivered/s' }]
    }).thresholds(thresholds('green')))
    .withPanel(statPanel({
      title: 'Pending',
      description: 'Items accepted and not yet delivered or failed: waiting for a batch, or in a batch in flight.',
      unit: 'short',
      span: 6,
      targets: [{ expr: sumBy([], select(METRICS.bulkPending)), legend: 'pending' }]
    }).thresholds(thresholds('green')))
    .withPanel(statPanel({
      title: 'Dead letters',
      description: 'Items in the dead-letter stores of the chosen routes: they failed for good and wait for a redrive.',
      unit: 'short',
      span: 6,
      targets: [{ expr: sumBy([], select(METRICS.bulkDeadLetters)), legend: 'dead letters' }]
    }).thresholds(thresholds('green', [{ value: 1, color: 'red' }])))
    .withRow(row('Items'))
    .withPanel(timeSeries({
      title: 'Items accepted vs delivered',
      description: 'Single writes per second: accepted at the door, delivered to the upstream in batches. Delivered trails accepted by the batch wait; a lasting gap is a growing backlog.',
      unit: 'cps',
      targets: [{ expr: sumBy(['outcome'], rate(select(items, outcomes('accepted', 'delivered')))), legend: '{{outcome}}' }]
    }).min(0).overrideByName('accepted', [fixedColor('blue')]).overrideByName('delivered', [fixedColor('green')]))
    .withPanel(timeSeries({
      title: 'Items failed and rejected',
      description: 'Single writes per second that failed for good (the upstream refused the item, or retries ran out) or were rejected at the door (an invalid or oversized item, the queue full at maxPending, the gateway shutting down).',
      unit: 'cps',
      targets: [{ expr: sumBy(['outcome'], rate(select(items, outcomes('failed', 'rejected')))), legend: '{{outcome}}' }]
    }).min(0).overrideByName('failed', [fixedColor('red')]).overrideByName('rejected', [fixedColor('orange')]))
    .withRow(row('Batches'))
    .withPanel(bucketHeatmap({
      title: 'Batch size distribution',
      description: 'Batches sent per interval by size in items (the bulk_batch_size buckets, 1 to 100000): a batch at batchSize was full, a small one left on maxWait.',
      unit: 'short',
      targets: [{
        expr: sumBy(['le'], `increase(${select(METRICS.bulkBatchSize, [], '_bucket')}[${RATE_INTERVAL}])`),
        legend: '{{le}}',
        format: 'heatmap'
      }]
    }))
    .withPanel(timeSeries({
      title: 'Flush latency p50 / p95 / p99',
      description: 'Time from sending a batch to its last result, retries included.',
      unit: 's',
      targets: [0.5, 0.95, 0.99].map((q) => ({ expr: quantile(q, METRICS.bulkFlushDuration), legend: `p${Math.round(q * 100)}` }))
    }).min(0))
    .withPanel(stackedSeries({
      title: 'Batches by outcome',
      description: 'Attempts at sending a batch, per second: success, retry (another attempt follows) or failed.',
      unit: 'cps',
      targets: [{ expr: sumBy(['outcome'], rate(select(METRICS.bulkBatches))), legend: '{{outcome}}' }]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Batch size p50 / p99',
      description: 'Items per batch, median and 99th percentile, interpolated within the bulk_batch_size buckets.',
      unit: 'short',
      targets: [0.5, 0.99].map((q) => ({ expr: quantile(q, METRICS.bulkBatchSize), legend: `p${Math.round(q * 100)}` }))
    }).min(0))
    .withRow(row('Backlog'))
    .withPanel(timeSeries({
      title: 'Pending items',
      description: 'Items accepted and not yet delivered or failed, per route: waiting for a batch or in a batch in flight.',
      unit: 'short',
      targets: [{ expr: sumBy(['route'], select(METRICS.bulkPending)), legend: '{{route}}' }]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Dead-letter items',
      description: 'Items in each route\'s dead-letter store: failed for good, kept for a redrive.',
      unit: 'short',
      targets: [{ expr: sumBy(['route'], select(METRICS.bulkDeadLetters)), legend: '{{route}}' }]
    }).min(0)))
}
