// GatewayMetrics: per-request recording, scrape-time breaker gauges, Prometheus text and OpenMetrics.
import { Counter, Histogram, openMetricsContentType, Registry, type RegistryContentType } from 'prom-client'
import t from 'tap'
import {
  CACHE_OPERATION_BUCKETS_SECONDS, GatewayMetrics, LATENCY_BUCKETS_SECONDS, METRICS, NOT_FOUND_URI, outcomeOf, OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_CONTENT_TYPE
} from '../../../src/metrics/index.js'
import type { BreakerSnapshot } from '../../../src/resilience/types.js'
import { parsePrometheus, series, valueOf } from '../../helpers/prometheus.js'

const closed: BreakerSnapshot = {
  name: 'catalog',
  state: 'CLOSED',
  failureRate: -1,
  failureRateThreshold: 50,
  slowCallRate: -1,
  slowCallRateThreshold: 100,
  bufferedCalls: 7,
  failedCalls: 2,
  slowCalls: 3,
  slowFailedCalls: 1,
  notPermittedCalls: 0
}

t.test('observeRequest counts the transaction and times the request with Spring\'s labels', async (t) => {
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  metrics.observeRequest('catalog', 'GET', '/api/catalog', 200, 0.004)
  metrics.observeRequest('catalog', 'GET', '/api/catalog', 200, 0.2)
  metrics.observeRequest('catalog', 'POST', '/api/catalog', 504, 5.5, 'BW_ERR_UPSTREAM_TIMEOUT')
  metrics.observeRequest(null, 'GET', NOT_FOUND_URI, 404, 0.0001)
  const text = await metrics.metrics()
  const m = parsePrometheus(text)
  t.equal(m.types.get('transactions_total'), 'counter')
  t.equal(valueOf(m, 'transactions_total', { route: 'catalog', method: 'GET', status: '200' }), 2)
  t.equal(valueOf(m, 'transactions_total', { route: 'catalog', method: 'POST', status: '504' }), 1)
  t.equal(series(m, 'transactions_total').length, 2, 'a request that matched no route is no transaction')

  const ok = { method: 'GET', uri: '/api/catalog', status: '200', outcome: 'SUCCESS', exception: 'None' }
  t.equal(valueOf(m, 'http_server_requests_seconds_count', ok), 2)
  t.ok(Math.abs(valueOf(m, 'http_server_requests_seconds_sum', ok) - 0.204) < 1e-9)
  t.equal(valueOf(m, 'http_server_requests_seconds_bucket', { ...ok, le: '0.005' }), 1)
  t.equal(valueOf(m, 'http_server_requests_seconds_bucket', { ...ok, le: '0.25' }), 2)
  t.equal(valueOf(m, 'http_server_requests_seconds_count', { status: '504', outcome: 'SERVER_ERROR', exception: 'BW_ERR_UPSTREAM_TIMEOUT' }), 1)
  t.equal(valueOf(m, 'http_server_requests_seconds_count', { uri: 'NOT_FOUND', status: '404', outcome: 'CLIENT_ERROR' }), 1)
  // The route id, as transactions_total has it, so latency can be read per route; empty (no label to Prometheus) for no route.
  t.equal(valueOf(m, 'http_server_requests_seconds_count', { ...ok, route: 'catalog' }), 2)
  t.match(text, /^http_server_requests_seconds_count\{method="GET",uri="NOT_FOUND",status="404",outcome="CLIENT_ERROR",exception="None",route=""\} 1$/m)
})

t.test('outcomes follow Spring\'s Outcome.forStatus', async (t) => {
  t.same([101, 204, 304, 429, 503, 99, 600].map(outcomeOf),
    ['INFORMATIONAL', 'SUCCESS', 'REDIRECTION', 'CLIENT_ERROR', 'SERVER_ERROR', 'UNKNOWN', 'UNKNOWN'])
})

t.test('breaker calls, refusals and retries', async (t) => {
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  metrics.declareBreaker('catalog', true)
  metrics.declareBreaker('orders', false)
  metrics.observeBreakerCall('catalog', 'successful', 0.01)
  metrics.observeBreakerCall('catalog', 'failed', 2)
  metrics.countNotPermitted('catalog')
  metrics.countNotPermitted('catalog')
  metrics.countRetry('catalog', 'successful_with_retry')
  const m = parsePrometheus(await metrics.metrics())
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_count', { name: 'catalog', kind: 'successful' }), 1)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_sum', { name: 'catalog', kind: 'failed' }), 2)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_count', { name: 'catalog', kind: 'ignored' }), 0, 'declared at zero')
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_count', { name: 'orders', kind: 'failed' }), 0)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'catalog', kind: 'not_permitted' }), 2)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'orders', kind: 'not_permitted' }), 0)
  t.equal(valueOf(m, 'resilience4j_retry_calls_total', { name: 'catalog', kind: 'successful_with_retry' }), 1)
  t.equal(valueOf(m, 'resilience4j_retry_calls_total', { name: 'catalog', kind: 'failed_with_retry' }), 0)
  t.equal(series(m, 'resilience4j_retry_calls_total', { name: 'orders' }).length, 0, 'no retry series for a route without retries')
})

t.test('breaker gauges are read from the snapshots at each scrape', async (t) => {
  let snapshots: BreakerSnapshot[] = []
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  metrics.setBreakerSource(() => snapshots)
  t.equal(series(parsePrometheus(await metrics.metrics()), 'resilience4j_circuitbreaker_state').length, 0)

  snapshots = [closed, { ...closed, name: 'orders', state: 'FORCED_OPEN', failureRate: 40, slowCallRate: 12.5 }]
  const m = parsePrometheus(await metrics.metrics())
  const states = series(m, 'resilience4j_circuitbreaker_state', { name: 'orders' })
  t.same(Object.fromEntries(states.map((s) => [s.labels.state, s.value])),
    { closed: 0, open: 0, half_open: 0, forced_open: 1, disabled: 0, metrics_only: 0 })
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_state', { name: 'catalog', state: 'closed' }), 1)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_buffered_calls', { name: 'catalog', kind: 'successful' }), 5)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_buffered_calls', { name: 'catalog', kind: 'failed' }), 2)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_slow_calls', { name: 'catalog', kind: 'successful' }), 2)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_slow_calls', { name: 'catalog', kind: 'failed' }), 1)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_failure_rate', { name: 'catalog' }), -1)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_failure_rate', { name: 'orders' }), 40)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_slow_call_rate', { name: 'orders' }), 12.5)

  snapshots = [closed]
  t.equal(series(parsePrometheus(await metrics.metrics()), 'resilience4j_circuitbreaker_state', { name: 'orders' }).length, 0,
    'a breaker that is gone is no longer reported')
})

t.test('OpenMetrics on request, without disturbing the Prometheus text', async (t) => {
  const metrics = new GatewayMetrics({ breakers: () => [closed] })
  metrics.observeRequest('catalog', 'GET', '/api/catalog', 200, 0.01)
  t.equal(metrics.contentType(false), PROMETHEUS_CONTENT_TYPE)
  t.equal(metrics.contentType(true), OPENMETRICS_CONTENT_TYPE)

  // Both at once: the OpenMetrics rendering renames counters while it runs.
  const [open, prom] = await Promise.all([metrics.metrics(true), metrics.metrics(false)])
  const om = parsePrometheus(open)
  t.ok(om.eof, 'OpenMetrics ends with # EOF')
  t.equal(om.types.get('transactions'), 'counter', 'OpenMetrics names the counter family without _total')
  t.equal(valueOf(om, 'transactions_total', { route: 'catalog' }), 1)
  t.equal(valueOf(om, 'resilience4j_circuitbreaker_state', { name: 'catalog', state: 'closed' }), 1)

  for (const text of [prom, await metrics.metrics(false)]) {
    const m = parsePrometheus(text)
    t.notOk(m.eof)
    t.equal(m.types.get('transactions_total'), 'counter', 'the text format keeps _total in the family name')
    t.equal(valueOf(m, 'transactions_total', { route: 'catalog' }), 1)
    t.equal(m.types.get('process_cpu_seconds_total'), 'counter', 'with the default process metrics')
    t.ok(series(m, 'nodejs_eventloop_lag_seconds').length === 1, 'and the Node.js ones')
  }
})

t.test('a failing scrape does not stop the next one', async (t) => {
  let fail = true
  const metrics = new GatewayMetrics({
    defaultMetrics: false,
    breakers: () => {
      if (fail) throw new Error('boom')
      return [closed]
    }
  })
  await t.rejects(metrics.metrics(), /boom/)
  fail = false
  t.equal(valueOf(parsePrometheus(await metrics.metrics()), 'resilience4j_circuitbreaker_failure_rate', { name: 'catalog' }), -1)
})

/** The lines of metric family `name`, from its # HELP to the next family, in either format. */
function family (text: string, name: string): string {
  const lines = text.split('\n')
  const start = lines.indexOf(lines.find((line) => line.startsWith(`# HELP ${name} `)) ?? '')
  if (start < 0) throw new Error(`no family ${name}`)
  const end = lines.findIndex((line, i) => i > start && (line === '' || line === '# EOF' || line.startsWith('# HELP ')))
  return lines.slice(start, end).join('\n')
}

t.test('histograms and counters render byte for byte as prom-client\'s own, scrape after scrape', async (t) => {
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  // The oracle: prom-client's Histogram and Counter, fed the same requests.
  const oracle = new Registry<RegistryContentType>()
  const { httpServerRequests: h, transactions: c } = METRICS
  const histogram = new Histogram({ name: h.name, help: h.help, labelNames: h.labelNames, buckets: [...h.buckets], registers: [oracle] })
  const counter = new Counter({ name: c.name, help: c.help, labelNames: c.labelNames, registers: [oracle] })
  const observe = (method: string, status: number, seconds: number): void => {
    metrics.observeRequest('catalog', method, '/api/catalog', status, seconds)
    counter.inc({ route: 'catalog', method, status: String(status) })
    histogram.observe({ method, uri: '/api/catalog', status: String(status), outcome: outcomeOf(status), exception: 'None', route: 'catalog' }, seconds)
  }

  // On bounds, just past them, zero, past the last bound, and a sum that is not exact in binary.
  observe('GET', 200, 0)
  observe('GET', 200, 0.001)
  observe('POST', 503, 0.0010001)
  observe('GET', 404, 30)
  observe('GET', 200, 0.1)
  observe('GET', 200, 0.2)
  t.equal(family(await metrics.metrics(), h.name), family(await oracle.metrics(), h.name))
  t.equal(family(await metrics.metrics(), c.name), family(await oracle.metrics(), c.name))

  observe('POST', 503, 30.5)
  observe('GET', 200, 2.5)
  observe('DELETE', 500, 0.0049)
  const text = await metrics.metrics()
  t.equal(family(text, h.name), family(await oracle.metrics(), h.name), 'what came after the first scrape is added, nothing lost or counted twice')
  t.equal(family(text, c.name), family(await oracle.metrics(), c.name))
  t.match(family(text, h.name), /^http_server_requests_seconds_bucket\{le="\+Inf",method="POST",uri="\/api\/catalog",status="503",outcome="SERVER_ERROR",exception="None",route="catalog"\} 2$/m)

  // Last: prom-client's registry renames its counters for good when it renders OpenMetrics.
  oracle.setContentType(openMetricsContentType)
  const open = await metrics.metrics(true)
  const oracleOpen = await oracle.metrics()
  t.equal(family(open, h.name), family(oracleOpen, h.name))
  t.equal(family(open, 'transactions'), family(oracleOpen, 'transactions'))
})

t.test('an observation counts in the first bucket whose bound it does not exceed, as Prometheus\' le', async (t) => {
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  const calls = { name: 'catalog', kind: 'failed' }
  for (const seconds of [0.001, 0.0010001, 30, 30.0001]) metrics.observeBreakerCall('catalog', 'failed', seconds)
  metrics.observeCacheOperation('get', 'memory', 0.00005, false)
  let m = parsePrometheus(await metrics.metrics())
  const bucket = (le: string): number => valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_bucket', { ...calls, le })
  t.same(series(m, 'resilience4j_circuitbreaker_calls_seconds_bucket').map((s) => s.labels.le), [...LATENCY_BUCKETS_SECONDS.map(String), '+Inf'])
  t.equal(bucket('0.001'), 1, 'a value on a bound counts in that bound')
  t.equal(bucket('0.0025'), 2, 'just past it, in the next one')
  t.equal(bucket('30'), 3)
  t.equal(bucket('+Inf'), 4, 'past the last bound, in +Inf only')
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_count', calls), 4)
  t.same(series(m, 'cache_operation_latency_seconds_bucket').map((s) => [s.labels.le, s.value]),
    [...CACHE_OPERATION_BUCKETS_SECONDS.map((le) => [String(le), 1]), ['+Inf', 1]], 'each histogram with its own buckets')

  t.throws(() => { metrics.observeBreakerCall('catalog', 'failed', NaN) }, TypeError, 'a duration that is not a number is refused')
  t.throws(() => { metrics.observeBreakerCall('catalog', 'failed', Infinity) }, TypeError)
  m = parsePrometheus(await metrics.metrics())
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_count', calls), 4, 'and not counted')
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_sum', calls), 60.0021001)
})

t.test('counts made after a scrape are in the next one, and none twice', async (t) => {
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  const notPermitted = async (openMetrics = false): Promise<number> =>
    valueOf(parsePrometheus(await metrics.metrics(openMetrics)), 'resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'catalog' })
  metrics.countNotPermitted('catalog')
  t.equal(await notPermitted(), 1)
  metrics.countNotPermitted('catalog')
  metrics.countNotPermitted('catalog')
  t.equal(await notPermitted(true), 3)
  t.equal(await notPermitted(), 3, 'a scrape without new counts changes nothing')
  metrics.countNotPermitted('catalog')
  t.equal(await notPermitted(), 4)
})

t.test('a series appears with its first observation, not before', async (t) => {
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  let m = parsePrometheus(await metrics.metrics())
  t.equal(m.types.get('http_server_requests_seconds'), 'histogram', 'the family is declared')
  t.equal(series(m, 'http_server_requests_seconds_count').length, 0, 'with no series')
  t.equal(series(m, 'cache_hits_total').length, 0)

  metrics.observeRequest('catalog', 'GET', '/api/catalog', 200, 0.01)
  metrics.countCacheHit('catalog')
  m = parsePrometheus(await metrics.metrics())
  t.same(series(m, 'http_server_requests_seconds_count').map((s) => s.labels.status), ['200'])
  t.same(series(m, 'transactions_total').map((s) => s.labels.status), ['200'])
  t.same(series(m, 'cache_hits_total').map((s) => s.value), [1])

  metrics.observeRequest('catalog', 'GET', '/api/catalog', 404, 0.01)
  m = parsePrometheus(await metrics.metrics())
  t.same(series(m, 'http_server_requests_seconds_count').map((s) => [s.labels.status, s.value]), [['200', 1], ['404', 1]])
})

t.test('resetting the registry drops every series, and counting starts over', async (t) => {
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  metrics.observeRequest('catalog', 'GET', '/api/catalog', 200, 0.01)
  metrics.registry.resetMetrics()
  let m = parsePrometheus(await metrics.metrics())
  t.equal(series(m, 'transactions_total').length, 0)
  t.equal(series(m, 'http_server_requests_seconds_count').length, 0)

  metrics.observeRequest('catalog', 'GET', '/api/catalog', 200, 0.01)
  m = parsePrometheus(await metrics.metrics())
  t.equal(valueOf(m, 'transactions_total', { route: 'catalog' }), 1)
  t.equal(valueOf(m, 'http_server_requests_seconds_count', { status: '200' }), 1)
})
