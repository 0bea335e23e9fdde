// The PromQL helpers: selectors that carry the dashboard filters, and the reader that finds the metrics and labels an expression uses.
import t from 'tap'
import {
  metricNamesIn, metricOf, NODE_METRICS, quantile, rate, ratio, routeLabelOf, select, selectorsIn, sumBy
} from '../../../src/dashboards/index.js'
import { AUTOSCALER_METRICS, METRICS } from '../../../src/metrics/index.js'

t.test('select filters by job and instance, and by route in whichever label the metric carries it', async (t) => {
  t.equal(select(METRICS.transactions), 'transactions_total{job=~"$job",instance=~"$instance",route=~"$route"}')
  t.equal(select(METRICS.breakerFailureRate), 'resilience4j_circuitbreaker_failure_rate{job=~"$job",instance=~"$instance",name=~"$route"}',
    'Resilience4j\'s `name` is the route id')
  t.equal(select(METRICS.cacheErrors), 'cache_errors_total{job=~"$job",instance=~"$instance"}', 'no route label, no route filter')
  t.equal(select(METRICS.httpServerRequests, ['outcome="SERVER_ERROR"'], '_count'),
    'http_server_requests_seconds_count{job=~"$job",instance=~"$instance",route=~"$route",outcome="SERVER_ERROR"}')
  t.equal(routeLabelOf(METRICS.bulkItems), 'route')
  t.equal(routeLabelOf(METRICS.retryCalls), 'name')
  t.equal(routeLabelOf(NODE_METRICS.heapUsed), null)
})

t.test('select filters the autoscaler\'s per-master metrics by node, and its others by job and instance only', async (t) => {
  t.equal(select(AUTOSCALER_METRICS.nodeCpu), 'redis_node_cpu_percent{job=~"$job",instance=~"$instance",node=~"$node"}')
  t.equal(select(AUTOSCALER_METRICS.decisions, ['applied="true"']),
    'redis_autoscaler_decisions_total{job=~"$job",instance=~"$instance",applied="true"}')
  t.equal(routeLabelOf(AUTOSCALER_METRICS.nodeMemory), null)
})

t.test('rate, sums, quantiles and ratios', async (t) => {
  t.equal(rate('x{}'), 'rate(x{}[$__rate_interval])')
  t.equal(rate('x{}', '5m'), 'rate(x{}[5m])')
  t.equal(sumBy([], 'x'), 'sum(x)')
  t.equal(sumBy(['route', 'kind'], 'x'), 'sum by (route, kind) (x)')
  t.equal(quantile(0.99, METRICS.bulkFlushDuration),
    'histogram_quantile(0.99, sum by (le) (rate(bulk_flush_duration_seconds_bucket{job=~"$job",instance=~"$instance",route=~"$route"}[$__rate_interval])))')
  t.equal(quantile(0.5, METRICS.cacheOperationLatency, ['operation'], ['store="redis"']),
    'histogram_quantile(0.5, sum by (le, operation) (rate(cache_operation_latency_seconds_bucket{job=~"$job",instance=~"$instance",store="redis"}[$__rate_interval])))')
  t.equal(ratio('a', 'b'), '(a or 0 * b) / b', 'a part with no series yet reads 0, not a gap')
})

t.test('selectorsIn finds each metric with the labels it matches on, and nothing else', async (t) => {
  t.same(selectorsIn('histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{a="1", b=~"2|3",c!="}"}[5m])))'),
    [{ metric: 'x_bucket', labels: ['a', 'b', 'c'] }], 'functions, by lists, numbers and ranges are not metrics')
  t.same(selectorsIn('a{job="j"} / on (instance) group_left (version) b or c > bool 0 unless d offset 5m'),
    [{ metric: 'a', labels: ['job'] }, { metric: 'b', labels: [] }, { metric: 'c', labels: [] }, { metric: 'd', labels: [] }],
    'keywords are not metrics; a bare name is')
  t.same(selectorsIn('time() - process_start_time_seconds'), [{ metric: 'process_start_time_seconds', labels: [] }])
  t.same(selectorsIn('sum by (class) (label_replace(rate(x{}[1m]), "class", "$1", "status", "([0-9]).."))'),
    [{ metric: 'x', labels: [] }], 'label_replace\'s strings are not metrics')
  t.same(selectorsIn('job:requests:rate5m'), [{ metric: 'job:requests:rate5m', labels: [] }], 'a recording rule\'s name')
  t.same(selectorsIn(''), [])
  t.same(metricNamesIn('a{} + a{} / b'), ['a', 'b'], 'each once')
})

t.test('metricOf knows our metrics and prom-client\'s, and a histogram only by its series', async (t) => {
  t.equal(metricOf('transactions_total'), METRICS.transactions)
  t.equal(metricOf('http_server_requests_seconds_bucket'), METRICS.httpServerRequests)
  t.equal(metricOf('http_server_requests_seconds_sum'), METRICS.httpServerRequests)
  t.equal(metricOf('http_server_requests_seconds_count'), METRICS.httpServerRequests)
  t.equal(metricOf('nodejs_gc_duration_seconds_sum'), NODE_METRICS.gcDuration)
  t.equal(metricOf('nodejs_heap_size_used_bytes'), NODE_METRICS.heapUsed)
  t.equal(metricOf('http_server_requests_seconds'), null, 'a histogram has no series of its bare name')
  t.equal(metricOf('transactions_total_count'), null, 'a counter has no _count')
  t.equal(metricOf('redis_autoscaler_leader'), AUTOSCALER_METRICS.leader)
  t.equal(metricOf('redis_autoscaler_operation_seconds_bucket'), AUTOSCALER_METRICS.operation)
  t.equal(metricOf('redis_autoscaler_operation_seconds'), null)
  t.equal(metricOf('up'), null)
})
