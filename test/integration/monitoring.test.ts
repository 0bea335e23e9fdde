// End to end with a real Prometheus: a gateway (and the autoscaler's registry) driven through every metric, then every dashboard query and variable run against the scraped data.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard'
import { buildDashboards, expandVariables, metricOf, panelQueries, selectorsIn, variableQueries } from '../../src/dashboards/index.js'
import { AUTOSCALER_METRIC_DEFINITIONS, AutoscalerMetrics, METRIC_DEFINITIONS } from '../../src/metrics/index.js'
import { REPO_ROOT } from '../helpers/cli.js'
import { startGateway, type Gateway } from '../helpers/gateway.js'
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus-server.js'
import { startRedis } from '../helpers/redis.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

/** The original plan's scrape job, as config/prometheus.yml names it: the dashboards' `job` variable. */
const JOB = 'circuit_breakers'
const TOKEN = 'monitoring-test-token'

/** `label_values(<selector>, <label>)` as an instant query that yields one series per value. */
function labelValuesQuery (query: string): string {
  const match = /^label_values\((.*),\s*(\w+)\)$/.exec(query)
  if (match === null) throw new Error(`not a label_values() query: ${query}`)
  return `group by (${match[2] as string}) (${match[1] as string})`
}

/** The autoscaler's scrape job, as a Prometheus config for `breakwater autoscale` would name it. */
const AUTOSCALER_JOB = 'breakwater-autoscaler'

const AUTOSCALER_METRIC_NAMES = new Set(AUTOSCALER_METRIC_DEFINITIONS.map((def) => def.name))

/** Whether a dashboard reads the autoscaler's metrics: a gateway's scrape has none, an autoscaler's scrape holds them. */
function readsAutoscaler (built: Dashboard): boolean {
  return panelQueries(built).some((query) => selectorsIn(query.expr).some((use) => AUTOSCALER_METRIC_NAMES.has(metricOf(use.metric)?.name ?? '')))
}

/** Every panel query and variable of `dashboards`, each with where it is and its PromQL. */
function queriesOf (dashboards: readonly Dashboard[]): Array<{ where: string, expr: string }> {
  return dashboards.flatMap((built) => [
    ...panelQueries(built).map((query) => ({ where: `${built.title} / ${query.panel} / ${query.refId}`, expr: query.expr })),
    ...variableQueries(built).map((variable) => ({ where: `${built.title} / $${variable.name}`, expr: labelValuesQuery(variable.query) }))
  ])
}

/** Where each query that returns no series is, with the dashboard variables given `values`. */
async function emptyQueries (prometheus: PrometheusServer, queries: ReadonlyArray<{ where: string, expr: string }>, values: Record<string, string>): Promise<string[]> {
  const missing: string[] = []
  for (const query of queries) {
    const data = await prometheus.query(expandVariables(query.expr, values))
    if (data.result.length === 0) missing.push(query.where)
  }
  return missing
}

/**
 * Runs `step` every 100 ms, asking Prometheus every fifth round, until every query returns data: for at most 45 s
 * and 500 rounds. Resolves with the queries still empty then (none, when all answered) and the rounds it took.
 */
async function untilEveryQueryAnswers (prometheus: PrometheusServer, queries: ReadonlyArray<{ where: string, expr: string }>, values: Record<string, string>,
  step: (round: number) => Promise<void>): Promise<{ missing: string[], rounds: number }> {
  let round = 0
  let missing: string[] = queries.map((query) => query.where)
  const deadline = Date.now() + 45_000
  while (missing.length > 0 && Date.now() < deadline && round < 500) {
    round++
    await step(round)
    if (round % 5 === 0) missing = await emptyQueries(prometheus, queries, values)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { missing, rounds: round }
}

async function send (gw: Gateway, path: string, init: Parameters<typeof request>[1] = {}): Promise<number> {
  const res = await request(`${gw.url}${path}`, init)
  await res.body.dump()
  return res.statusCode
}

t.test('every dashboard query returns data from a real Prometheus scraping a driven gateway', async (t) => {
  const redis = await startRedis(t)
  let catalogUp = true
  const catalog = await startUpstream(t, (_req, res) => {
    if (!catalogUp) {
      res.writeHead(503)
      res.end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=1' })
    res.end('{"items":[]}')
  })
  const flaky = await startUpstream(t, (_req, res) => {
    res.writeHead(500)
    res.end()
  })
  // The bulk endpoint takes every item but `{"fail":true}`, which it refuses: a dead letter.
  const bulk = await startUpstream(t, (_req, res, body) => {
    const items = JSON.parse(body.toString('utf8')) as Array<{ fail?: boolean }>
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(items.map((item) => ({ status: item.fail === true ? 409 : 201 }))))
  })
  const gw = await startGateway(t, `
management:
  token: ${TOKEN}
redis: {url: '${redis.url}', commandTimeout: 1s}
routes:
  - id: catalog
    prefix: /api/catalog
    upstream: ${catalog.url}
    cache: {staleIfError: 5m, memory: {ttl: 1s}}
  - id: flaky
    prefix: /api/flaky
    upstream: ${flaky.url}
    breaker: {failureThreshold: 1, recoveryTimeout: 1s}
    retry: {retries: 1, backoff: 1ms}
  - id: events
    prefix: /api/events
    upstream: ${bulk.url}
    bulk: {path: /api/events/_bulk, mode: async, batchSize: 10, maxWait: 10ms, retry: {retries: 0}}
`, { instanceId: 'gw-monitoring' })
  const prometheus = await startPrometheus(t, {
    scrapeConfigs: [{ job_name: JOB, metrics_path: '/actuator/prometheus', static_configs: [{ targets: [`127.0.0.1:${gw.port}`] }] }],
    ruleFiles: [join(REPO_ROOT, 'config', 'alerts.yml')]
  })

  // Every family of metrics: transactions and request timings, breaker calls through OPEN and HALF_OPEN (a failed
  // trial each recoveryTimeout), retries, cache hits, misses, bypasses and stale answers, bulk items delivered and
  // dead-lettered. Bounded: a round a few times a second until every query has data, or the deadline.
  const json = { 'content-type': 'application/json' }
  const drive = async (round: number): Promise<void> => {
    await send(gw, '/api/catalog/items')
    await send(gw, `/api/catalog/items?page=${round}`)
    await send(gw, '/api/catalog/items', { headers: { 'cache-control': 'no-store' } })
    await send(gw, '/api/flaky')
    await send(gw, '/api/events', { method: 'POST', headers: json, body: JSON.stringify({ n: round }) })
    if (round % 5 === 0) await send(gw, '/api/events', { method: 'POST', headers: json, body: '{"fail":true}' })
    await send(gw, '/nowhere')
  }
  // The autoscaler's dashboard reads metrics a gateway never exports: the next test runs it against autoscaler scrapes.
  const dashboards = buildDashboards().filter((built) => !readsAutoscaler(built))
  const queries = queriesOf(dashboards)
  t.ok(queries.length >= 30, `${queries.length} queries across ${dashboards.length} dashboards`)
  const values = { job: JOB, instance: `127.0.0.1:${gw.port}`, route: '.*', __rate_interval: '1m' }
  const { missing, rounds } = await untilEveryQueryAnswers(prometheus, queries, values, async (round) => {
    await drive(round)
    // The cache's stale answers: the catalog fails once its entry went stale (max-age=1), then comes back.
    if (round === 10) catalogUp = false
    if (round === 30) catalogUp = true
  })
  t.same(missing, [], `every query returned data (after ${rounds} rounds of traffic)`)
  const events = await (await request(`${gw.url}/actuator/circuitbreakerevents/flaky`)).body.json() as { circuitBreakerEvents: Array<{ stateTransition?: string }> }
  const transitions = new Set(events.circuitBreakerEvents.map((event) => event.stateTransition).filter((transition) => transition !== undefined))
  t.ok(transitions.has('CLOSED_TO_OPEN') && transitions.has('OPEN_TO_HALF_OPEN') && transitions.has('HALF_OPEN_TO_OPEN'),
    `the flaky route's breaker went through OPEN and HALF_OPEN (${[...transitions].join(', ')})`)

  const rules = await withDeadline(request(`${prometheus.url}/api/v1/rules`).then(async (res) => await res.body.json()), 'the rules') as {
    data: { groups: Array<{ rules: Array<{ name: string, health: string, lastError?: string }> }> }
  }
  const loaded = rules.data.groups.flatMap((group) => group.rules)
  t.ok(loaded.length >= 5, `the alert rules loaded (${loaded.length})`)
  await waitUntil(async () => {
    const again = await (await request(`${prometheus.url}/api/v1/rules`)).body.json() as typeof rules
    return again.data.groups.flatMap((group) => group.rules).every((rule) => rule.health === 'ok')
  }, 'every alert rule evaluated without error', 10_000, 200)
})

t.test('on an idle gateway the latency panels are empty: Prometheus\' own scrapes are not a route\'s latency', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await startGateway(t, `
routes:
  - {id: catalog, prefix: /api/catalog, upstream: '${upstream.url}'}
`)
  const prometheus = await startPrometheus(t, {
    scrapeConfigs: [{ job_name: JOB, metrics_path: '/actuator/prometheus', static_configs: [{ targets: [`127.0.0.1:${gw.port}`] }] }]
  })
  const values = { job: JOB, instance: `127.0.0.1:${gw.port}`, route: '.*', __rate_interval: '1m' }
  // The scrapes are timed (uri /actuator/prometheus): once their rate shows, a panel that counted them would too.
  const scrapes = expandVariables('rate(http_server_requests_seconds_count{job=~"$job",instance=~"$instance",uri="/actuator/prometheus"}[$__rate_interval])', values)
  await waitUntil(async () => (await prometheus.query(scrapes)).result.length > 0, 'two scrapes of the gateway', 30_000, 200)
  const transactions = buildDashboards().find((built) => built.uid === 'breakwater-transactions') as Dashboard
  const latency = panelQueries(transactions).filter((query) => query.panel.startsWith('Latency'))
  t.equal(latency.length, 5, 'p99, p50 / p95 / p99, p99 by route')
  for (const query of latency) {
    t.same((await prometheus.query(expandVariables(query.expr, values))).result, [], `${query.panel} / ${query.refId} is empty`)
  }
})

t.test('every Redis Cluster dashboard query returns data from a real Prometheus scraping a leader and a standby autoscaler', async (t) => {
  // `breakwater autoscale` is not shipped yet: each target is the autoscaler's own registry (AutoscalerMetrics, what its
  // /actuator/prometheus will serve) on a real HTTP server, fed as its control loop feeds it.
  const leader = new AutoscalerMetrics()
  const standby = new AutoscalerMetrics()
  const serve = async (metrics: AutoscalerMetrics): Promise<string> => {
    const target = await startUpstream(t, (_req, res) => {
      metrics.metrics().then((text) => {
        res.writeHead(200, { 'content-type': metrics.contentType(false) })
        res.end(text)
      }, (err: unknown) => {
        res.writeHead(500)
        res.end(String(err))
      })
    })
    return `127.0.0.1:${target.port}`
  }
  const targets = [await serve(leader), await serve(standby)]
  const prometheus = await startPrometheus(t, {
    scrapeConfigs: [{ job_name: AUTOSCALER_JOB, metrics_path: '/actuator/prometheus', static_configs: [{ targets }] }]
  })
  const nodes = ['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379']
  leader.setLeader(true)
  standby.setLeader(false)
  // One control-loop interval: the leader measures, decides and now and then scales; the standby only holds.
  const interval = (round: number): void => {
    leader.setMasters(3 + (round % 2))
    nodes.forEach((node, i) => { leader.setNodeLoad(node, 20 + i * 10 + (round % 5), 40 + i * 5) })
    leader.countDecision('hold', false)
    standby.countDecision('hold', false)
    if (round % 3 === 0) {
      const action = round % 2 === 0 ? 'scale_out' : 'scale_in'
      leader.countDecision(action, true)
      leader.countSlotsMoved(1365)
      leader.countKeysMoved(5000 + round)
      leader.observeOperation(action, 2 + round / 10)
      leader.setLastAction(Date.now() / 1000)
    }
  }

  const dashboards = buildDashboards().filter(readsAutoscaler)
  t.same(dashboards.map((built) => built.uid), ['breakwater-redis-cluster'], 'the autoscaler\'s dashboard, and no gateway one')
  const queries = queriesOf(dashboards)
  t.ok(queries.length >= 15, `${queries.length} queries`)
  const values = { job: AUTOSCALER_JOB, instance: '.*', node: '.*', __rate_interval: '1m' }
  const { missing, rounds } = await untilEveryQueryAnswers(prometheus, queries, values, async (round) => { interval(round) })
  t.same(missing, [], `every query returned data (after ${rounds} intervals)`)

  // What the panels say is what was fed: one leader of two instances, and the leader's three nodes.
  const leaders = panelQueries(dashboards[0] as Dashboard).find((query) => query.panel === 'Leaders')?.expr ?? ''
  const [sum] = (await prometheus.query(expandVariables(leaders, values))).result as Array<{ value: [number, string] }>
  t.equal(sum?.value[1], '1', 'one leader')
  const node = queries.find((query) => query.where.endsWith('$node'))?.expr ?? ''
  const listed = (await prometheus.query(expandVariables(node, values))).result as Array<{ metric: { node: string } }>
  t.same(listed.map((one) => one.metric.node).sort(), nodes, 'the node variable lists the measured masters')
})

t.test('promtool check metrics finds nothing to lint in a live scrape', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
routes:
  - id: echo
    prefix: /
    upstream: ${origin.url}
    cache: {ttl: 1s}
  - id: events
    prefix: /api/events
    upstream: ${origin.url}
    bulk: {path: /api/events/_bulk, maxWait: 1ms}
`)
  await send(gw, '/x')
  const scrape = await (await request(`${gw.url}/actuator/prometheus`)).body.text()
  const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new Error('promtool is not installed: install Debian\'s prometheus package (apt-get install prometheus)') : err)
    })
    child.once('exit', (code) => { resolve(code) })
  })
  child.stdin.end(scrape)
  await withDeadline(exited, 'promtool check metrics', 30_000)
  const findings = output.split('\n').filter((line) => line.trim() !== '')
  // prom-client names three of its default gauges with _total; dashboards query them by those names, so they stay.
  const promClientGauges = new Set(['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
  t.same(findings.filter((line) => !promClientGauges.has(line.split(' ')[0] as string)), [], `no finding beyond prom-client's own gauges: ${output}`)
  t.ok(METRIC_DEFINITIONS.every((def) => scrape.includes(`# TYPE ${def.name} ${def.type}`)), 'the scrape held every metric of the gateway\'s own')
})
