// The metric names and labels are a public contract: exactly the names the issues give, Resilience4j's, Spring's and the sprint plan's.
import t from 'tap'
import { METRIC_DEFINITIONS, METRICS, LATENCY_BUCKETS_SECONDS } from '../../../src/metrics/index.js'

t.test('names, types and labels are exactly the contract', async (t) => {
  t.same(Object.fromEntries(METRIC_DEFINITIONS.map((d) => [d.name, [d.type, ...d.labelNames]])), {
    transactions_total: ['counter', 'route', 'method', 'status'],
    http_server_requests_seconds: ['histogram', 'method', 'uri', 'status', 'outcome', 'exception', 'route'],
    resilience4j_circuitbreaker_state: ['gauge', 'name', 'state'],
    resilience4j_circuitbreaker_calls_seconds: ['histogram', 'name', 'kind'],
    resilience4j_circuitbreaker_not_permitted_calls_total: ['counter', 'name', 'kind'],
    resilience4j_circuitbreaker_buffered_calls: ['gauge', 'name', 'kind'],
    resilience4j_circuitbreaker_slow_calls: ['gauge', 'name', 'kind'],
    resilience4j_circuitbreaker_failure_rate: ['gauge', 'name'],
    resilience4j_circuitbreaker_slow_call_rate: ['gauge', 'name'],
    resilience4j_retry_calls_total: ['counter', 'name', 'kind'],
    cache_hits_total: ['counter', 'route'],
    cache_misses_total: ['counter', 'route'],
    cache_operation_latency_seconds: ['histogram', 'operation', 'store'],
    cache_stale_served_total: ['counter', 'route', 'reason'],
    cache_bypass_total: ['counter', 'route', 'reason'],
    cache_errors_total: ['counter', 'operation'],
    bulk_items_total: ['counter', 'route', 'outcome'],
    bulk_batches_total: ['counter', 'route', 'outcome'],
    bulk_batch_size: ['histogram', 'route'],
    bulk_flush_duration_seconds: ['histogram', 'route'],
    bulk_pending_items: ['gauge', 'route'],
    bulk_dead_letter_items: ['gauge', 'route'],
    config_reloads_total: ['counter', 'result'],
    config_last_reload_success_timestamp_seconds: ['gauge'],
    config_generation: ['gauge']
  })
})

t.test('every definition is well formed', async (t) => {
  for (const def of METRIC_DEFINITIONS) {
    t.match(def.name, /^[a-z_][a-z0-9_]*$/, def.name)
    t.ok(def.help.length > 0, `${def.name} has help`)
    if (def.type === 'counter') t.match(def.name, /_total$/, `${def.name}: counters end in _total`)
    if (def.type === 'histogram') {
      // The issue names bulk_batch_size, a count of items: the one histogram not in seconds.
      t.match(def.name, def === METRICS.bulkBatchSize ? /_size$/ : /_seconds$/, `${def.name}: histograms are in seconds, or items`)
      const buckets = def.buckets ?? []
      t.ok(buckets.length > 0 && buckets.every((b, i) => i === 0 || b > (buckets[i - 1] as number)), `${def.name}: buckets ascend`)
    } else {
      t.equal(def.buckets, undefined, `${def.name}: only histograms have buckets`)
    }
  }
  t.equal(METRICS.httpServerRequests.buckets, LATENCY_BUCKETS_SECONDS)
  t.equal(LATENCY_BUCKETS_SECONDS[0], 0.001, 'from 1 ms ...')
  t.equal(LATENCY_BUCKETS_SECONDS.at(-1), 30, '... to 30 s, as Micrometer\'s timer histogram')
})
