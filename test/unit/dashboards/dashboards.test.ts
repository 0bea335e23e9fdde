// Every dashboard: the variables, the datasource, units and descriptions, stable uids and links, and queries that read only defined metrics.
import type { Dashboard, Panel, RowPanel } from '@grafana/grafana-foundation-sdk/dashboard'
import t from 'tap'
import {
  BREAKER_STATE_STYLES, buildDashboards, DASHBOARD_TAG, DATASOURCE, metricOf, NODE_LABEL, NODE_METRIC_DEFINITIONS, panelQueries,
  REDIS_CLUSTER_UID, routeLabelOf, selectorsIn, variableQueries
} from '../../../src/dashboards/index.js'
import {
  AUTOSCALER_METRIC_DEFINITIONS, AUTOSCALER_METRICS, BREAKER_STATE_LABELS, METRIC_DEFINITIONS, METRICS
} from '../../../src/metrics/index.js'

const dashboards = buildDashboards()
const byUid = (uid: string): Dashboard => dashboards.find((d) => d.uid === uid) as Dashboard
const panelsOf = (d: Dashboard): Panel[] => (d.panels ?? []).filter((p): p is Panel => p.type !== 'row')
const panel = (d: Dashboard, title: string): Panel | undefined => panelsOf(d).find((p) => p.title === title)
const exprsOf = (d: Dashboard, title: string): string[] => panelQueries(d).filter((q) => q.panel === title).map((q) => q.expr)
/** The Grafana units the dashboards use: a typo here would show raw numbers. */
const UNITS = new Set(['reqps', 'ops', 'opm', 'cps', 's', 'percent', 'percentunit', 'bytes', 'short', 'none'])
/** The autoscaler's dashboard: its metrics have no route, and a Redis Cluster node instead. */
const isAutoscalers = (d: Dashboard): boolean => d.uid === REDIS_CLUSTER_UID

t.test('six dashboards with stable uids, tagged, in the README\'s order', async (t) => {
  t.same(dashboards.map((d) => d.uid), [
    'breakwater-transactions', 'breakwater-circuit-breakers', 'breakwater-cache', 'breakwater-bulk', 'breakwater-process',
    'breakwater-redis-cluster'
  ], 'uids are what links, bookmarks and provisioning refer to: renaming one is a breaking change')
  for (const d of dashboards) {
    t.ok((d.uid ?? '').length <= 40, `${d.uid}: Grafana takes uids of at most 40 characters`)
    t.same(d.tags, [DASHBOARD_TAG], `${d.uid} is tagged`)
    t.match(d.title, /^Breakwater \/ /, `${d.uid} has a title`)
    t.ok((d.description ?? '').length > 0, `${d.uid} has a description`)
  }
  t.equal(new Set(dashboards.map((d) => d.title)).size, dashboards.length, 'titles are unique')
})

t.test('every dashboard links to the others, keeping the time range and the variables', async (t) => {
  for (const d of dashboards) {
    t.same(d.links, [{
      title: 'Breakwater',
      type: 'dashboards',
      icon: 'dashboard',
      tooltip: 'Other Breakwater dashboards, same time range and filters',
      tags: [DASHBOARD_TAG],
      asDropdown: false,
      targetBlank: false,
      includeVars: true,
      keepTime: true
    }], `${d.uid}: one link by tag, shown in the top bar (no controls-menu placement)`)
  }
})

t.test('every dashboard has the datasource, job, instance and route (the autoscaler\'s: node) variables, each filtering the next', async (t) => {
  for (const d of dashboards) {
    const list = d.templating.list ?? []
    const last = isAutoscalers(d) ? 'node' : 'route'
    t.same(list.map((v) => v.name), ['datasource', 'job', 'instance', last], `${d.uid}: variables`)
    const [datasource, job, instance, scope] = list
    t.match(datasource, { type: 'datasource', query: 'prometheus' }, `${d.uid}: a prometheus datasource variable`)
    for (const v of [job, instance, scope]) {
      t.match(v, { type: 'query', datasource: DATASOURCE, multi: true, includeAll: true, allValue: '.*', refresh: 2 }, `${d.uid}: ${v?.name}`)
    }
    const queries = Object.fromEntries(variableQueries(d).map((v) => [v.name, v.query]))
    t.match(queries.job, /^label_values\([a-z0-9_]+, job\)$/, `${d.uid}: job`)
    t.match(queries.instance, /^label_values\([a-z0-9_]+\{job=~"\$job"\}, instance\)$/, `${d.uid}: instance within the jobs`)
    const labels = isAutoscalers(d) ? 'node' : '(route|name)'
    t.match(queries[last], new RegExp(`^label_values\\([a-z0-9_]+\\{job=~"\\$job",instance=~"\\$instance"\\}, ${labels}\\)$`),
      `${d.uid}: ${last}s of the instances`)
  }
  t.match(variableQueries(byUid('breakwater-circuit-breakers')).at(-1)?.query, /resilience4j_circuitbreaker_state.*, name\)$/,
    'breaker routes come from Resilience4j\'s `name`, so Spring services list theirs')
})

t.test('no datasource uid is baked in: every panel and query reads the datasource variable', async (t) => {
  let refs = 0
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) { node.forEach((child, i) => { walk(child, `${path}[${i}]`) }); return }
    if (node === null || typeof node !== 'object') return
    for (const [key, value] of Object.entries(node)) {
      if (key === 'datasource') {
        refs++
        t.same(value, { type: 'prometheus', uid: '${datasource}' }, path) // eslint-disable-line no-template-curly-in-string
      }
      walk(value, `${path}.${key}`)
    }
  }
  for (const d of dashboards) walk(d, d.uid ?? '')
  const panels = dashboards.flatMap(panelsOf)
  const targets = panels.flatMap((p) => p.targets ?? [])
  t.equal(refs, panels.length + targets.length + dashboards.length * 3, 'each panel, each query and each query variable has one')
})

t.test('every panel says what it shows, in a unit, with an id of its own and a place on the grid', async (t) => {
  for (const d of dashboards) {
    const all = d.panels ?? []
    t.same(all.map((p) => p.id), all.map((_p, i) => i + 1), `${d.uid}: ids 1..n, rows included`)
    for (const p of all) {
      const { x, w } = p.gridPos ?? { x: -1, w: 0 }
      t.ok(x >= 0 && x + w <= 24, `${d.uid} ${p.title}: within the 24 columns`)
    }
    for (const p of panelsOf(d)) {
      t.ok((p.description ?? '').length > 20, `${d.uid} ${p.title}: a description`)
      t.ok(UNITS.has(p.fieldConfig?.defaults.unit ?? ''), `${d.uid} ${p.title}: unit ${p.fieldConfig?.defaults.unit}`)
      t.ok((p.targets ?? []).length > 0, `${d.uid} ${p.title}: queries`)
    }
    t.ok((d.panels ?? []).some((p): p is RowPanel => p.type === 'row'), `${d.uid}: grouped in rows`)
  }
})

t.test('every query reads defined metrics only, filters by job, instance, route and node, and matches on their labels only', async (t) => {
  for (const d of dashboards) {
    const queries = [
      ...panelQueries(d).map((q) => ({ where: `${d.uid} ${q.panel} ${q.refId}`, expr: q.expr, filtered: true })),
      // label_values(<selector>, <label>): the selector is PromQL; the label must be one of its metric's.
      ...variableQueries(d).map((v) => {
        const [, selector = '', label = ''] = /^label_values\((.*), (\w+)\)$/.exec(v.query) ?? []
        const metric = metricOf(selectorsIn(selector)[0]?.metric ?? '')
        t.ok(label === 'job' || label === 'instance' || metric?.labelNames.includes(label), `${d.uid} $${v.name}: ${label} is a label of ${metric?.name}`)
        return { where: `${d.uid} $${v.name}`, expr: selector, filtered: false }
      })
    ]
    for (const { where, expr, filtered } of queries) {
      const uses = selectorsIn(expr)
      t.ok(uses.length > 0, `${where}: reads a metric`)
      for (const use of uses) {
        const metric = metricOf(use.metric)
        t.ok(metric !== null, `${where}: ${use.metric} is in METRICS, AUTOSCALER_METRICS or prom-client's defaults`)
        if (metric === null) continue
        const labels = new Set(['job', 'instance', ...metric.labelNames, ...(use.metric.endsWith('_bucket') ? ['le'] : [])])
        for (const label of use.labels) t.ok(labels.has(label), `${where}: ${use.metric} has label ${label}`)
        if (!filtered) continue
        const route = routeLabelOf(metric)
        const required = ['job', 'instance', ...(route === null ? [] : [route]), ...(metric.labelNames.includes(NODE_LABEL) ? [NODE_LABEL] : [])]
        t.same(use.labels.slice(0, required.length), required, `${where}: ${use.metric} filtered by ${required.join(', ')}`)
      }
      // Grouping labels: the metrics' own, `le` of buckets, and the one label_replace() makes.
      const known = new Set(['job', 'instance', 'le', 'class', ...uses.flatMap((use) => metricOf(use.metric)?.labelNames ?? [])])
      for (const [, list = ''] of expr.matchAll(/\b(?:by|without) \(([^)]*)\)/g)) {
        for (const label of list.split(', ')) t.ok(known.has(label), `${where}: groups by ${label}, a label of its metrics`)
      }
    }
  }
})

t.test('every defined metric, the gateway\'s and the autoscaler\'s, and every prom-client default named, is on a dashboard', async (t) => {
  const read = new Set(dashboards.flatMap((d) => [...panelQueries(d).map((q) => q.expr), ...variableQueries(d).map((v) => v.query)])
    .flatMap((expr) => selectorsIn(expr).map((use) => metricOf(use.metric)?.name)))
  for (const def of [...METRIC_DEFINITIONS, ...AUTOSCALER_METRIC_DEFINITIONS, ...NODE_METRIC_DEFINITIONS]) {
    t.ok(read.has(def.name), `${def.name} is on a dashboard`)
  }
})

t.test('Transaction Processing: the issue\'s panels', async (t) => {
  const d = byUid('breakwater-transactions')
  t.same(exprsOf(d, 'Transactions per Second'),
    ['sum by (route) (rate(transactions_total{job=~"$job",instance=~"$instance",route=~"$route"}[5m]))'],
    'rate(transactions_total[5m]) by route, as the original plan has it')
  t.equal(panel(d, 'Transactions per Second')?.fieldConfig?.defaults.unit, 'reqps')
  const latency = exprsOf(d, 'Latency p50 / p95 / p99')
  t.same(latency.map((e) => /^histogram_quantile\(([0-9.]+), sum by \(le\) \(rate\(http_server_requests_seconds_bucket\{/.exec(e)?.[1]),
    ['0.5', '0.95', '0.99'])
  // On an idle gateway the only requests are Prometheus' own scrapes: a latency panel that counted them would show that.
  const latencyPanels = ['Latency p99', 'Latency p50 / p95 / p99', 'Latency p99 by route']
  for (const expr of latencyPanels.flatMap((title) => exprsOf(d, title))) {
    t.match(expr, 'route=~"$route"', `${expr} follows the route variable`)
    t.match(expr, 'uri!~"/actuator(/.*)?"', `${expr} leaves out /actuator`)
    t.match(expr, 'uri!="NOT_FOUND"', `${expr} leaves out requests no route matched`)
  }
  t.equal(panelQueries(d).find((q) => q.panel === 'Latency p99 by route')?.legend, '{{route}}')
  t.match(exprsOf(d, 'Error ratio by route')[0], /^\(sum by \(route\) \(rate\(transactions_total\{[^}]*status=~"5\.\."\}/)
  t.equal(panel(d, 'Error ratio by route')?.fieldConfig?.defaults.unit, 'percentunit')
  t.match(exprsOf(d, 'Responses by status class')[0], /^sum by \(class\) \(label_replace\(rate\(transactions_total\{/)
  t.equal(panelQueries(d).find((q) => q.panel === 'Responses by status class')?.legend, '{{class}}xx')
})

t.test('Circuit Breakers: a state timeline whose numbers map back to every Resilience4j state', async (t) => {
  const d = byUid('breakwater-circuit-breakers')
  const state = panel(d, 'Breaker state')
  t.equal(state?.type, 'state-timeline')
  t.same([...BREAKER_STATE_STYLES.map((s) => s.state)].sort(), [...BREAKER_STATE_LABELS].sort(),
    'a style for each state the gateway exports, and no other')
  const [query] = exprsOf(d, 'Breaker state')
  BREAKER_STATE_STYLES.forEach(({ state: name }, code) => {
    t.match(query, `state="${name}"} * ${code}`, `${name} is ${code} in the query`)
    t.match(state?.fieldConfig?.defaults.mappings?.[0], { type: 'value', options: { [code]: { text: name.toUpperCase() } } }, `... and ${code} reads ${name.toUpperCase()}`)
  })
  t.match(query, /^sum by \(instance, name\) \(/, 'one row per breaker and instance')
  const failure = panel(d, 'Failure rate')
  t.same(failure?.fieldConfig?.defaults.thresholds?.steps.map((s) => s.value), [null, 50], 'Resilience4j\'s default threshold, 50%')
  t.match(failure?.fieldConfig?.defaults.custom, { thresholdsStyle: { mode: 'dashed' } }, 'drawn as a line')
  t.same(exprsOf(d, 'Failure rate'), ['resilience4j_circuitbreaker_failure_rate{job=~"$job",instance=~"$instance",name=~"$route"} >= 0'],
    'the -1 of a window short of minimumCalls is no rate')
  t.same(panel(d, 'Slow-call rate')?.fieldConfig?.defaults.thresholds?.steps.map((s) => s.value), [null, 100])
  t.match(exprsOf(d, 'Not permitted calls')[0], METRICS.breakerNotPermitted.name)
  t.match(exprsOf(d, 'Calls by kind')[0], /^sum by \(name, kind\) \(rate\(resilience4j_circuitbreaker_calls_seconds_count\{/)
})

t.test('Cache, Bulk and Gateway process: the issue\'s panels', async (t) => {
  const cache = byUid('breakwater-cache')
  t.match(exprsOf(cache, 'Hit ratio by route')[0], /^sum by \(route\) \(rate\(cache_hits_total\{.*\/ \(sum by \(route\) .*cache_misses_total/)
  t.same(exprsOf(cache, 'Hits, misses, stale and bypass').flatMap((e) => selectorsIn(e).map((s) => s.metric)),
    ['cache_hits_total', 'cache_misses_total', 'cache_stale_served_total', 'cache_bypass_total'])
  t.match(exprsOf(cache, 'Operation latency p99')[0], /^histogram_quantile\(0\.99, sum by \(le, operation, store\) /)
  t.match(exprsOf(cache, 'Store errors by operation')[0], /^sum by \(operation\) \(rate\(cache_errors_total\{/)

  const bulk = byUid('breakwater-bulk')
  t.match(exprsOf(bulk, 'Items accepted vs delivered')[0], 'outcome=~"accepted|delivered"')
  const sizes = panel(bulk, 'Batch size distribution')
  t.equal(sizes?.type, 'heatmap')
  t.match(sizes?.options, { calculate: false }, 'Prometheus buckets drawn as they are')
  t.match(sizes?.targets?.[0], { format: 'heatmap', legendFormat: '{{le}}' })
  t.match(exprsOf(bulk, 'Batch size distribution')[0], /^sum by \(le\) \(increase\(bulk_batch_size_bucket\{/)
  t.equal(exprsOf(bulk, 'Flush latency p50 / p95 / p99').length, 3)
  t.match(exprsOf(bulk, 'Pending items')[0], METRICS.bulkPending.name)
  t.match(exprsOf(bulk, 'Dead-letter items')[0], METRICS.bulkDeadLetters.name)

  const process = byUid('breakwater-process')
  const reads = (title: string): string[] => exprsOf(process, title).flatMap((e) => selectorsIn(e).map((s) => s.metric))
  t.same(reads('Event-loop lag'), ['nodejs_eventloop_lag_p50_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_max_seconds'])
  t.same(reads('Heap'), ['nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes'])
  t.same(reads('Resident memory (RSS)'), ['process_resident_memory_bytes', 'nodejs_external_memory_bytes'])
  t.same(reads('CPU'), ['process_cpu_user_seconds_total', 'process_cpu_system_seconds_total'])
  t.same(reads('Open handles'), ['nodejs_active_handles_total', 'nodejs_active_requests_total'])
  t.equal(panel(process, 'Heap')?.fieldConfig?.defaults.unit, 'bytes')
})

t.test('Redis Cluster: the autoscaler\'s panels, on its metrics only', async (t) => {
  const d = byUid(REDIS_CLUSTER_UID)
  const autoscalers = new Set(AUTOSCALER_METRIC_DEFINITIONS.map((def) => def.name))
  for (const q of panelQueries(d)) {
    t.ok(selectorsIn(q.expr).some((use) => autoscalers.has(metricOf(use.metric)?.name ?? '')), `${q.panel} ${q.refId}: reads the autoscaler's metrics`)
  }
  t.notOk(panelQueries(d).some((q) => /route/.test(q.expr)), 'the autoscaler has no route: none is faked')
  t.same(exprsOf(d, 'Masters over time'), ['redis_cluster_masters{job=~"$job",instance=~"$instance"}'])
  t.same(exprsOf(d, 'CPU by node'), ['max by (node) (redis_node_cpu_percent{job=~"$job",instance=~"$instance",node=~"$node"})'])
  t.same(exprsOf(d, 'Memory by node'), ['max by (node) (redis_node_memory_percent{job=~"$job",instance=~"$instance",node=~"$node"})'])
  for (const title of ['CPU by node', 'Memory by node']) {
    t.equal(panel(d, title)?.fieldConfig?.defaults.unit, 'percent')
    t.same(panel(d, title)?.fieldConfig?.defaults.thresholds, undefined, `${title}: no threshold Prometheus does not know`)
  }
  t.match(exprsOf(d, 'Decisions by action')[0], /^60 \* sum by \(action, applied\) \(rate\(redis_autoscaler_decisions_total\{/)
  t.equal(panel(d, 'Decisions by action')?.fieldConfig?.defaults.unit, 'opm')
  t.match(exprsOf(d, 'Slots moved')[0], /rate\(redis_autoscaler_slots_moved_total\{/)
  t.match(exprsOf(d, 'Keys moved')[0], /rate\(redis_autoscaler_keys_moved_total\{/)
  t.same(exprsOf(d, 'Operation duration p50 / p99').map((e) => /^histogram_quantile\(([0-9.]+), sum by \(le, action\) /.exec(e)?.[1]), ['0.5', '0.99'])
  t.equal(panel(d, 'Operation duration distribution')?.type, 'heatmap')
  const leader = panel(d, 'Leader')
  t.equal(leader?.type, 'state-timeline')
  t.same(exprsOf(d, 'Leader'), ['redis_autoscaler_leader{job=~"$job",instance=~"$instance"}'])
  t.match(leader?.fieldConfig?.defaults.mappings?.[0], { type: 'value', options: { 0: { text: 'STANDBY' }, 1: { text: 'LEADER' } } })
  t.same(panel(d, 'Leaders')?.fieldConfig?.defaults.thresholds?.steps.map((s) => [s.value, s.color]), [[null, 'red'], [1, 'green'], [2, 'red']],
    'one leader is right, none or two are not')
  t.same(exprsOf(d, 'Since last scale operation'), ['time() - max(redis_autoscaler_last_action_timestamp_seconds{job=~"$job",instance=~"$instance"})'])
  for (const q of panelQueries(d).filter((q) => q.panel.startsWith('Autoscaler '))) {
    t.match(q.expr, / and on \(job, instance\) redis_autoscaler_leader\{/, `${q.panel} ${q.refId}: the autoscalers' processes, not the gateways'`)
  }
  t.match(variableQueries(d), [
    { name: 'job', query: `label_values(${AUTOSCALER_METRICS.leader.name}, job)` },
    { name: 'instance' },
    { name: 'node', query: /^label_values\(redis_node_memory_percent\{.*\}, node\)$/ }
  ])
})
