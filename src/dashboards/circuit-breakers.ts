// Circuit Breakers: state, rates against their thresholds, and calls per breaker, on Resilience4j's meter names (so Spring services show too).
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import { METRICS, type BreakerCallKind } from '../metrics/definitions.js'
import { breakwaterDashboard, finish, row, stackedSeries, stateTimeline, thresholdLines, thresholds, timeSeries } from './panels.js'
import { quantile, rate, select, sumBy } from './promql.js'

export const CIRCUIT_BREAKERS_UID = 'breakwater-circuit-breakers'

/**
 * How the state timeline draws each Resilience4j state (the `state` label of resilience4j_circuitbreaker_state): its
 * position here is its number in the query, mapped back to its name and colour. A unit test keeps it in step with the
 * states the gateway exports.
 */
export const BREAKER_STATE_STYLES = [
  { state: 'closed', color: 'green' },
  { state: 'half_open', color: 'yellow' },
  { state: 'open', color: 'red' },
  { state: 'forced_open', color: 'dark-red' },
  { state: 'disabled', color: 'text' },
  { state: 'metrics_only', color: 'blue' }
] as const

/** Resilience4j's defaults: failureRateThreshold 50 (%), slowCallRateThreshold 100 (%). Breakwater sets its own per route. */
const DEFAULT_FAILURE_RATE_THRESHOLD = 50
const DEFAULT_SLOW_CALL_RATE_THRESHOLD = 100

const IGNORED: BreakerCallKind = 'ignored'
const perBreaker = '{{name}} on {{instance}}'

/**
 * One series per breaker and instance whose value is its state's number: Resilience4j exports a 0/1 gauge per state,
 * so each state's gauge is scaled by its number and the six are added up (`or` keeps them apart until the sum).
 */
function stateQuery (): string {
  const terms = BREAKER_STATE_STYLES.map(({ state }, code) => `${select(METRICS.breakerState, [`state="${state}"`])} * ${code}`)
  return sumBy(['instance', 'name'], terms.join(' or '))
}

function stateMappings (): dashboard.ValueMapping[] {
  const options = Object.fromEntries(BREAKER_STATE_STYLES.map(({ state, color }, code) =>
    [String(code), { text: state.toUpperCase(), color, index: code }] as const))
  return [{ type: dashboard.MappingType.ValueToText, options }]
}

/** A rate in percent, without the -1 a breaker reports until its window holds `minimumCalls`. */
function measuredRate (metric: typeof METRICS.breakerFailureRate | typeof METRICS.breakerSlowCallRate): string {
  return `${select(metric)} >= 0`
}

export function circuitBreakersDashboard (): dashboard.Dashboard {
  return finish(breakwaterDashboard({
    uid: CIRCUIT_BREAKERS_UID,
    title: 'Breakwater / Circuit Breakers',
    description: 'Resilience4j circuit breakers per route: state, failure and slow-call rates against their thresholds, calls and refusals. Spring Boot services with resilience4j-micrometer show here too.',
    anchor: METRICS.breakerState,
    routes: METRICS.breakerState
  })
    .withRow(row('State'))
    .withPanel(stateTimeline({
      title: 'Breaker state',
      description: 'Each breaker\'s state over time, per instance: CLOSED lets calls through, OPEN refuses them, HALF_OPEN lets trial calls through; FORCED_OPEN, DISABLED and METRICS_ONLY are set by an operator or by config.',
      unit: 'none',
      span: 24,
      targets: [{ expr: stateQuery(), legend: perBreaker }]
    }).mappings(stateMappings()).thresholds(thresholds('text')))
    .withRow(row('Rates'))
    .withPanel(timeSeries({
      title: 'Failure rate',
      description: `Failed calls in the sliding window, in percent. The dashed line is ${DEFAULT_FAILURE_RATE_THRESHOLD}%, Resilience4j's default failureRateThreshold (Breakwater's is set per route, off unless set). No line until the window holds minimumCalls: the breaker reports -1 until then.`,
      unit: 'percent',
      targets: [{ expr: measuredRate(METRICS.breakerFailureRate), legend: perBreaker }]
    }).min(0).max(100).thresholds(thresholds('green', [{ value: DEFAULT_FAILURE_RATE_THRESHOLD, color: 'red' }]))
      .thresholdsStyle(thresholdLines()))
    .withPanel(timeSeries({
      title: 'Slow-call rate',
      description: `Calls in the sliding window slower than slowCallThreshold, in percent. The dashed line is ${DEFAULT_SLOW_CALL_RATE_THRESHOLD}%, the default slowCallRateThreshold (Resilience4j's and Breakwater's). No line until the window holds minimumCalls.`,
      unit: 'percent',
      targets: [{ expr: measuredRate(METRICS.breakerSlowCallRate), legend: perBreaker }]
    }).min(0).max(100).thresholds(thresholds('green', [{ value: DEFAULT_SLOW_CALL_RATE_THRESHOLD, color: 'red' }]))
      .thresholdsStyle(thresholdLines()))
    .withRow(row('Calls'))
    .withPanel(stackedSeries({
      title: 'Calls by kind',
      description: 'Calls through each breaker per second: successful, failed (counted against the breaker) and ignored (neither, like a 4xx).',
      unit: 'reqps',
      targets: [{ expr: sumBy(['name', 'kind'], rate(select(METRICS.breakerCalls, [], '_count'))), legend: '{{name}} {{kind}}' }]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Not permitted calls',
      description: 'Calls each breaker refused per second (OPEN, FORCED_OPEN, or HALF_OPEN with its trial calls taken): answered by a fallback, stale cache or 503 without touching the upstream.',
      unit: 'reqps',
      targets: [{ expr: sumBy(['name'], rate(select(METRICS.breakerNotPermitted))), legend: '{{name}}' }]
    }).min(0))
    .withPanel(timeSeries({
      title: 'Call duration p99',
      description: 'The 99th percentile of call duration per breaker, successful and failed calls. Spring services export these buckets only with a percentiles histogram enabled for resilience4j.circuitbreaker.calls.',
      unit: 's',
      targets: [{ expr: quantile(0.99, METRICS.breakerCalls, ['name', 'kind'], [`kind!="${IGNORED}"`]), legend: '{{name}} {{kind}}' }]
    }).min(0))
    .withPanel(stackedSeries({
      title: 'Retries by kind',
      description: 'Requests on routes with retries, per second, once their last attempt is done: successful or failed, with or without a retry.',
      unit: 'reqps',
      targets: [{ expr: sumBy(['name', 'kind'], rate(select(METRICS.retryCalls))), legend: '{{name}} {{kind}}' }]
    }).min(0))
    .withRow(row('Sliding window'))
    .withPanel(stackedSeries({
      title: 'Calls in the sliding window',
      description: 'The calls each breaker\'s rates are computed over, successful and failed: below minimumCalls the rates read -1.',
      unit: 'short',
      targets: [{ expr: sumBy(['name', 'kind'], select(METRICS.breakerBufferedCalls)), legend: '{{name}} {{kind}}' }]
    }).min(0))
    .withPanel(stackedSeries({
      title: 'Slow calls in the sliding window',
      description: 'Calls in each breaker\'s window slower than slowCallThreshold, successful and failed.',
      unit: 'short',
      targets: [{ expr: sumBy(['name', 'kind'], select(METRICS.breakerSlowCalls)), legend: '{{name}} {{kind}}' }]
    }).min(0)))
}
