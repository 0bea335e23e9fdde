// Transaction Processing: the original plan's dashboard of throughput, latency and errors per route.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard'
import { METRICS, type Outcome } from '../metrics/definitions.js'
import { NOT_FOUND_URI } from '../metrics/registry.js'
import { breakwaterDashboard, finish, fixedColor, row, stackedSeries, statPanel, thresholds, timeSeries } from './panels.js'
import { quantile, rate, ratio, select, sumBy } from './promql.js'

export const TRANSACTIONS_UID = 'breakwater-transactions'

/** The original plan's window for "Transactions per Second": a steady line, where $__rate_interval would follow the zoom. */
const TPS_WINDOW = '5m'

const transactions = METRICS.transactions
const requests = METRICS.httpServerRequests
/**
 * Spring's timer counts requests no route matched (uri NOT_FOUND) and the gateway's own endpoints too; they are not
 * transactions, and on an idle gateway the scrape of /actuator/prometheus would be all the latency there is.
 */
const routed = [`uri!="${NOT_FOUND_URI}"`, 'uri!~"/actuator(/.*)?"']
const serverErrors = ['status=~"5.."']
const SERVER_ERROR: Outcome = 'SERVER_ERROR'

/** Each status class's colour, as HTTP dashboards usually draw them. */
const STATUS_CLASS_COLORS = { '2xx': 'green', '3xx': 'blue', '4xx': 'orange', '5xx': 'red' } as const

export function transactionsDashboard (): Dashboard {
  const all = rate(select(transactions))
  const errorRatio = (by: string[]): string => ratio(sumBy(by, rate(select(transactions, serverErrors))), sumBy(by, all))
  const statusClass = stackedSeries({
    title: 'Responses by status class',
    description: 'Transactions per second by status class (1xx to 5xx) of the answer the client got, upstream answers and the gateway\'s own (503 breaker open, 504 timeout...) alike.',
    unit: 'reqps',
    targets: [{
      // label_replace() takes the first digit of the status (5 of 503); the legend adds the xx.
      expr: sumBy(['class'], `label_replace(${all}, "class", "$1", "status", "([0-9])..")`),
      legend: '{{class}}xx'
    }]
  })
  for (const [name, color] of Object.entries(STATUS_CLASS_COLORS)) statusClass.overrideByName(name, [fixedColor(color)])

  return finish(breakwaterDashboard({
    uid: TRANSACTIONS_UID,
    title: 'Breakwater / Transaction Processing',
    description: 'Throughput, latency and errors of the requests the gateway routes.',
    anchor: transactions,
    routes: transactions
  })
    .withRow(row('Overview'))
    .withPanel(statPanel({
      title: 'Throughput',
      description: `Requests that matched a route, per second over the last ${TPS_WINDOW}, for the chosen routes.`,
      unit: 'reqps',
      span: 8,
      targets: [{ expr: sumBy([], rate(select(transactions), TPS_WINDOW)), legend: 'transactions/s' }]
    }).thresholds(thresholds('green')))
    .withPanel(statPanel({
      title: 'Error ratio',
      description: 'The share of transactions answered with a 5xx, upstream or the gateway\'s own.',
      unit: 'percentunit',
      span: 8,
      targets: [{ expr: errorRatio([]), legend: 'error ratio' }]
    }).thresholds(thresholds('green', [{ value: 0.01, color: 'orange' }, { value: 0.05, color: 'red' }])))
    .withPanel(statPanel({
      title: 'Latency p99',
      description: 'The 99th percentile of request duration (Spring\'s http_server_requests_seconds) on the chosen routes; /actuator and unmatched requests left out.',
      unit: 's',
      span: 8,
      targets: [{ expr: quantile(0.99, requests, [], routed), legend: 'p99' }]
    }).thresholds(thresholds('green', [{ value: 0.5, color: 'orange' }, { value: 1, color: 'red' }])))
    .withRow(row('Traffic'))
    .withPanel(timeSeries({
      title: 'Transactions per Second',
      description: `rate(transactions_total[${TPS_WINDOW}]) by route: requests that matched each route, per second over the last ${TPS_WINDOW}.`,
      unit: 'reqps',
      targets: [{ expr: sumBy(['route'], rate(select(transactions), TPS_WINDOW)), legend: '{{route}}' }]
    }).min(0))
    .withPanel(statusClass.min(0))
    .withRow(row('Latency'))
    .withPanel(timeSeries({
      title: 'Latency p50 / p95 / p99',
      description: 'Request duration percentiles from the http_server_requests_seconds histogram on the chosen routes; /actuator and unmatched requests left out. Accurate to the bucket bounds: 1 ms to 30 s.',
      unit: 's',
      targets: [0.5, 0.95, 0.99].map((q) => ({ expr: quantile(q, requests, [], routed), legend: `p${Math.round(q * 100)}` }))
    }).min(0))
    .withPanel(timeSeries({
      title: 'Latency p99 by route',
      description: 'The 99th percentile of request duration per route: the slow route stands out.',
      unit: 's',
      targets: [{ expr: quantile(0.99, requests, ['route'], routed), legend: '{{route}}' }]
    }).min(0))
    .withRow(row('Errors'))
    .withPanel(timeSeries({
      title: 'Error ratio by route',
      description: 'Per route, the share of transactions answered with a 5xx (0 to 100%), upstream or the gateway\'s own.',
      unit: 'percentunit',
      targets: [{ expr: errorRatio(['route']), legend: '{{route}}' }]
    }).min(0).thresholds(thresholds('green', [{ value: 0.05, color: 'red' }])))
    .withPanel(timeSeries({
      title: 'Server errors by exception',
      description: 'Requests per second answered with a 5xx, by Spring\'s `exception` tag: the gateway\'s error code (BW_ERR_...) when it answered itself, None when the upstream did.',
      unit: 'reqps',
      targets: [{
        expr: sumBy(['exception'], rate(select(requests, [`outcome="${SERVER_ERROR}"`], '_count'))),
        legend: '{{exception}}'
      }]
    }).min(0)))
}
