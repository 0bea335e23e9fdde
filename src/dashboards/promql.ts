// PromQL for the dashboards: selectors that always carry the dashboard's filters, and a small reader that finds the metrics an expression names.
import { AUTOSCALER_METRIC_DEFINITIONS } from '../metrics/autoscaler-definitions.js'
import { METRIC_DEFINITIONS } from '../metrics/definitions.js'
import { NODE_METRIC_DEFINITIONS, type QueriedMetric } from './node-metrics.js'

/** Grafana's rate window: at least four scrape intervals, so rate() always has two samples (grafana.com "$__rate_interval"). */
export const RATE_INTERVAL = '$__rate_interval'

/** The label a metric carries the route id in: `route` for ours, `name` for Resilience4j's breaker and retry meters. */
export function routeLabelOf (metric: QueriedMetric): 'route' | 'name' | null {
  if (metric.labelNames.includes('route')) return 'route'
  if (metric.labelNames.includes('name')) return 'name'
  return null
}

/** The label the autoscaler's per-master metrics carry the Redis Cluster node in (host:port as the cluster announces it). */
export const NODE_LABEL = 'node'

/** The series of a histogram: its buckets, the sum of observations and their count. */
export type HistogramPart = '_bucket' | '_sum' | '_count'

/**
 * `metric{job=~"$job",instance=~"$instance",route=~"$route",<matchers>}`: every query filters by the dashboard's job and
 * instance, by its route where the metric has a route (Resilience4j's `name` is the route id), and by its node where
 * the metric has a Redis Cluster node.
 */
export function select (metric: QueriedMetric, matchers: readonly string[] = [], part: HistogramPart | '' = ''): string {
  const route = routeLabelOf(metric)
  const filters = [
    'job=~"$job"',
    'instance=~"$instance"',
    ...(route === null ? [] : [`${route}=~"$route"`]),
    ...(metric.labelNames.includes(NODE_LABEL) ? [`${NODE_LABEL}=~"$node"`] : []),
    ...matchers
  ]
  return `${metric.name}${part}{${filters.join(',')}}`
}

/** `rate(<selector>[window])`, per second over Grafana's rate interval unless told. */
export function rate (selector: string, window = RATE_INTERVAL): string {
  return `rate(${selector}[${window}])`
}

/** `sum by (labels) (expr)`, or `sum(expr)` without labels. */
export function sumBy (labels: readonly string[], expr: string): string {
  return labels.length === 0 ? `sum(${expr})` : `sum by (${labels.join(', ')}) (${expr})`
}

/** The `q` quantile of histogram `metric` over the rate interval, per `by`: histogram_quantile() over the summed bucket rates. */
export function quantile (q: number, metric: QueriedMetric, by: readonly string[] = [], matchers: readonly string[] = []): string {
  return `histogram_quantile(${q}, ${sumBy(['le', ...by], rate(select(metric, matchers, '_bucket')))})`
}

/** `part / whole`, where a `part` with no series yet (no 5xx so far) counts as 0 rather than leaving a gap. */
export function ratio (part: string, whole: string): string {
  return `(${part} or 0 * ${whole}) / ${whole}`
}

/** One instant-vector selector found in an expression: the metric and the labels it matches on. */
export interface SelectorUse {
  readonly metric: string
  readonly labels: readonly string[]
}

/** Words that are PromQL syntax, never a metric. */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset'])
/** Keywords followed by a parenthesised list of label names. */
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right'])
/** A string, a `{...}` matcher list, a `[...]` range, a number or duration (`0.99`, `5m`), a name, or any other character. */
const TOKEN = /"(?:[^"\\]|\\.)*"|\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\}|\[[^\]]*\]|[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*|\s+|./gy
const MATCHER = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"/g

/**
 * The selectors in a PromQL expression, in order. Not a parser: enough for the expressions here, where a name is a
 * function when a `(` or `by` follows it, a label when it sits in a `by (...)` list or a `{...}`, and a metric otherwise.
 */
export function selectorsIn (expr: string): SelectorUse[] {
  const tokens = (expr.match(TOKEN) ?? []).filter((token) => !/^\s+$/.test(token))
  const found: SelectorUse[] = []
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string
    if (!/^[a-zA-Z_:]/.test(token)) continue
    const next = tokens[i + 1]
    if (LABEL_LISTS.has(token) && next === '(') {
      // Skip the label list: `by (le, route)`.
      while (i < tokens.length && tokens[i] !== ')') i++
      continue
    }
    // A function, or an aggregation written `sum by (...) (...)`.
    if (next === '(' || next === 'by' || next === 'without' || KEYWORDS.has(token)) continue
    const labels = next?.startsWith('{') === true ? [...next.matchAll(MATCHER)].map((m) => m[1] as string) : []
    found.push({ metric: token, labels })
  }
  return found
}

/** The metric names an expression reads, each once, in order. */
export function metricNamesIn (expr: string): string[] {
  return [...new Set(selectorsIn(expr).map((use) => use.metric))]
}

const KNOWN: readonly QueriedMetric[] = [...METRIC_DEFINITIONS, ...AUTOSCALER_METRIC_DEFINITIONS, ...NODE_METRIC_DEFINITIONS]
const HISTOGRAM_PARTS: readonly HistogramPart[] = ['_bucket', '_sum', '_count']

/**
 * The definition a series name belongs to, or null. A histogram has no series of its own name, only `_bucket`, `_sum`
 * and `_count`: its bare name is no series at all.
 */
export function metricOf (series: string): QueriedMetric | null {
  return KNOWN.find((metric) => (metric.type === 'histogram'
    ? HISTOGRAM_PARTS.some((part) => `${metric.name}${part}` === series)
    : metric.name === series)) ?? null
}
