// GatewayMetrics: per-request recording, scrape-time breaker gauges, Prometheus text and OpenMetrics.
import t from 'tap'
import { GatewayMetrics, NOT_FOUND_URI, outcomeOf, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE } from '../../../src/metrics/index.js'
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
