// End to end with a real Prometheus: a gateway driven through every metric, then every dashboard query and variable run against the scraped data.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { buildDashboards, expandVariables, panelQueries, variableQueries } from '../../src/dashboards/index.js'
import { METRIC_DEFINITIONS } from '../../src/metrics/index.js'
import { REPO_ROOT } from '../helpers/cli.js'
import { startGateway, type Gateway } from '../helpers/gateway.js'
import { startPrometheus } from '../helpers/prometheus-server.js'
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
  const dashboards = buildDashboards()
  const queries = dashboards.flatMap((built) => [
    ...panelQueries(built).map((query) => ({ where: `${built.title} / ${query.panel} / ${query.refId}`, expr: query.expr })),
    ...variableQueries(built).map((variable) => ({ where: `${built.title} / $${variable.name}`, expr: labelValuesQuery(variable.query) }))
  ])
  t.ok(queries.length >= 30, `${queries.length} queries across ${dashboards.length} dashboards`)
  const values = { job: JOB, instance: `127.0.0.1:${gw.port}`, route: '.*', __rate_interval: '1m' }
  const empty = async (): Promise<string[]> => {
    const missing: string[] = []
    for (const query of queries) {
      const data = await prometheus.query(expandVariables(query.expr, values))
      if (data.result.length === 0) missing.push(query.where)
    }
    return missing
  }

  let round = 0
  let missing: string[] = queries.map((query) => query.where)
  const deadline = Date.now() + 45_000
  while (missing.length > 0 && Date.now() < deadline && round < 500) {
    round++
    await drive(round)
    // The cache's stale answers: the catalog fails once its entry went stale (max-age=1), then comes back.
    if (round === 10) catalogUp = false
    if (round === 30) catalogUp = true
    if (round % 5 === 0) missing = await empty()
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.same(missing, [], `every query returned data (after ${round} rounds of traffic)`)
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
