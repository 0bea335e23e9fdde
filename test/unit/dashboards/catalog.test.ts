// The catalog: the committed JSON form of a dashboard, and the queries handed to tests that run them outside Grafana.
import { DashboardBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard'
import t from 'tap'
import {
  buildDashboards, dashboardFileName, DEFAULT_VARIABLE_VALUES, expandVariables, filterVariables, finish, NODE_METRICS, panelQueries,
  renderDashboard, transactionsDashboard, variableQueries
} from '../../../src/dashboards/index.js'
import { AUTOSCALER_METRICS, METRICS } from '../../../src/metrics/index.js'

t.test('the committed form: sorted keys at every level, two-space indent, a trailing newline, the same on every run', async (t) => {
  const [first] = buildDashboards()
  const text = renderDashboard(first as Dashboard)
  t.equal(text, renderDashboard(transactionsDashboard()), 'building twice gives the same bytes')
  t.ok(text.endsWith('}\n'))
  const parsed = JSON.parse(text) as Record<string, unknown>
  t.same(parsed, JSON.parse(JSON.stringify(first)), 'nothing lost')
  const sorted = (node: unknown): boolean => Array.isArray(node)
    ? node.every(sorted)
    : node === null || typeof node !== 'object' || (Object.keys(node).join() === Object.keys(node).sort().join() && Object.values(node).every(sorted))
  t.ok(sorted(parsed), 'keys sorted, arrays in their order')
  t.match(text, /^\{\n {2}"annotations": /)
  t.equal(dashboardFileName(first as Dashboard), 'breakwater-transactions.json')
})

t.test('panelQueries lists every query with its panel, skipping rows and panels without queries', async (t) => {
  const queries = panelQueries(transactionsDashboard())
  t.match(queries.find((q) => q.panel === 'Latency p50 / p95 / p99' && q.refId === 'C'), { legend: 'p99', expr: /^histogram_quantile\(0\.99, / })
  t.equal(queries.filter((q) => q.panel === 'Latency p50 / p95 / p99').length, 3)
  const made = {
    schemaVersion: 42,
    templating: {},
    annotations: {},
    panels: [
      { type: 'row', collapsed: false, id: 1, panels: [] },
      { type: 'text', title: 'Notes' },
      { type: 'timeseries', targets: [{ expr: 'up' }] }
    ]
  } as unknown as Dashboard
  t.same(panelQueries(made), [{ panel: '', refId: '', expr: 'up', legend: '' }])
  t.same(variableQueries(made), [], 'no variables')
  t.same(panelQueries({ schemaVersion: 42, templating: {}, annotations: {} }), [], 'no panels')
})

t.test('variableQueries lists the query variables, not the datasource', async (t) => {
  t.same(variableQueries(transactionsDashboard()), [
    { name: 'job', query: 'label_values(transactions_total, job)' },
    { name: 'instance', query: 'label_values(transactions_total{job=~"$job"}, instance)' },
    { name: 'route', query: 'label_values(transactions_total{job=~"$job",instance=~"$instance"}, route)' }
  ])
})

t.test('expandVariables fills in what Grafana would', async (t) => {
  const expr = 'sum(rate(x{job=~"$job",instance=~"$instance",route=~"$route"}[$__rate_interval]))'
  t.equal(expandVariables(expr), 'sum(rate(x{job=~".*",instance=~".*",route=~".*"}[1m]))')
  t.equal(expandVariables(expr, { ...DEFAULT_VARIABLE_VALUES, route: 'catalog', __rate_interval: '15s' }),
    'sum(rate(x{job=~".*",instance=~".*",route=~"catalog"}[15s]))')
  t.equal(expandVariables('x{node=~"$node"}'), 'x{node=~".*"}', 'every node')
  t.equal(expandVariables('label_replace(x, "class", "$1", "status", "(.)..")'), 'label_replace(x, "class", "$1", "status", "(.)..")',
    'label_replace()\'s regex group is no variable')
  t.throws(() => expandVariables('x{a="$nope"}'), { message: 'no value for $nope in x{a="$nope"}' })
  for (const query of buildDashboards().flatMap(panelQueries)) {
    t.notMatch(expandVariables(query.expr), /\$[a-zA-Z_]/, `${query.panel} ${query.refId}: every variable has a default`)
  }
})

t.test('finish numbers the panels and keeps the links in the top bar; a bare dashboard builds too', async (t) => {
  const bare = finish(new DashboardBuilder('Bare'))
  t.equal(bare.panels, undefined)
  t.equal(bare.links, undefined)
  const built = transactionsDashboard()
  t.ok((built.links ?? []).length > 0 && (built.links ?? []).every((link) => !('placement' in link)))
})

t.test('filterVariables wants a route-labelled metric for the route choices, a node-labelled one for the node choices', async (t) => {
  t.throws(() => filterVariables({ anchor: NODE_METRICS.startTime, routes: NODE_METRICS.startTime }),
    { message: 'expected a metric labelled with the route, got process_start_time_seconds' })
  t.throws(() => filterVariables({ anchor: AUTOSCALER_METRICS.leader, nodes: AUTOSCALER_METRICS.masters }),
    { message: 'expected a metric labelled with the node, got redis_cluster_masters' })
  const names = (source: Parameters<typeof filterVariables>[0]): string[] => filterVariables(source).map((v) => v.build().name)
  t.same(names({ anchor: METRICS.breakerState, routes: METRICS.retryCalls }), ['datasource', 'job', 'instance', 'route'])
  t.same(names({ anchor: AUTOSCALER_METRICS.leader, nodes: AUTOSCALER_METRICS.nodeCpu }), ['datasource', 'job', 'instance', 'node'],
    'no route variable where the metrics have no route')
  t.same(names({ anchor: AUTOSCALER_METRICS.leader }), ['datasource', 'job', 'instance'])
  const [, , , node] = filterVariables({ anchor: AUTOSCALER_METRICS.leader, nodes: AUTOSCALER_METRICS.nodeCpu })
  t.match(node?.build(), { query: 'label_values(redis_node_cpu_percent{job=~"$job",instance=~"$instance"}, node)' })
})
