// The /actuator endpoints end to end: a real gateway with its real circuit breakers (app.breakers), over HTTP.
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:net'
import { once } from 'node:events'
import t from 'tap'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import type { BreakerRegistry, CircuitBreaker, Permit } from '../../src/resilience/index.js'
import { buildServer } from '../../src/server/index.js'
import { startGateway as startTestGateway, type Gateway } from '../helpers/gateway.js'
import { parsePrometheus, series, valueOf } from '../helpers/prometheus.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitUntil } from '../helpers/wait.js'

interface TapLike { teardown: (fn: () => unknown) => void }

/** A gateway with its real BreakerRegistry. */
interface TestGateway extends Gateway {
  readonly breakers: BreakerRegistry
}

const TOKEN = 's3cret-token'
const AUTHORIZED = { authorization: `Bearer ${TOKEN}` }
const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

/** A gateway from YAML; its real BreakerRegistry (app.breakers) feeds the gateway's metrics. */
async function startGateway (t: TapLike, yaml: string, env: Record<string, string> = {}): Promise<TestGateway> {
  const gw = await startTestGateway(t, yaml, { env })
  return { ...gw, breakers: gw.app.breakers }
}

function routes (upstream: string, breaker = '{failureThreshold: 2}'): string {
  return `
routes:
  - id: orders
    prefix: /api/orders
    upstream: ${upstream}
    breaker: ${breaker}
  - id: catalog
    prefix: /api/catalog
    upstream: ${upstream}
    breaker: ${breaker}
    retry: {retries: 1}
`
}

/** Records calls through a real breaker, as the proxy path does. */
function fail (breaker: CircuitBreaker, times: number): void {
  for (let i = 0; i < times; i++) {
    const permit = breaker.tryAcquire()
    if (!permit.permitted) throw new Error('expected a permit')
    breaker.onResult(permit as Permit, 'failure', 20, 'upstream answered 502')
  }
}

async function getJson (url: string, headers: Record<string, string> = {}): Promise<{ status: number, type: string, body: any }> {
  const res = await request(url, { headers })
  return { status: res.statusCode, type: String(res.headers['content-type']), body: await res.body.json() }
}

async function post (url: string, body: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, unknown>, body: any }> {
  const res = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } })
  return { status: res.statusCode, headers: res.headers, body: await res.body.json() }
}

t.test('/actuator/prometheus: every breaker series, parsed, with its value', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, routes(origin.url))
  const orders = gw.breakers.get('orders') as CircuitBreaker
  fail(orders, 2)
  t.equal(orders.state, 'OPEN')
  t.equal(orders.tryAcquire().permitted, false)

  const res = await request(`${gw.url}/actuator/prometheus`)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const m = parsePrometheus(await res.body.text())

  t.same(Object.fromEntries(series(m, 'resilience4j_circuitbreaker_state', { name: 'orders' }).map((s) => [s.labels.state, s.value])),
    { closed: 0, open: 1, half_open: 0, forced_open: 0, disabled: 0, metrics_only: 0 })
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_state', { name: 'catalog', state: 'closed' }), 1)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_count', { name: 'orders', kind: 'failed' }), 2)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_sum', { name: 'orders', kind: 'failed' }), 0.04)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_bucket', { name: 'orders', kind: 'failed', le: '0.025' }), 2)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_count', { name: 'orders', kind: 'successful' }), 0)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_calls_seconds_count', { name: 'catalog', kind: 'ignored' }), 0)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'orders', kind: 'not_permitted' }), 1)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'catalog', kind: 'not_permitted' }), 0)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_buffered_calls', { name: 'orders', kind: 'failed' }), 2)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_buffered_calls', { name: 'orders', kind: 'successful' }), 0)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_slow_calls', { name: 'orders', kind: 'failed' }), 0)
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_failure_rate', { name: 'orders' }), -1, '-1 until minimumCalls (20)')
  t.equal(valueOf(m, 'resilience4j_circuitbreaker_slow_call_rate', { name: 'orders' }), -1)
  t.equal(valueOf(m, 'resilience4j_retry_calls_total', { name: 'catalog', kind: 'failed_with_retry' }), 0, 'a route with retries has its series')
  t.equal(series(m, 'resilience4j_retry_calls_total', { name: 'orders' }).length, 0)
  t.equal(m.types.get('transactions_total'), 'counter')
  t.equal(m.types.get('http_server_requests_seconds'), 'histogram')
  t.ok(valueOf(m, 'process_cpu_seconds_total') > 0, 'prom-client default process metrics')
  t.ok(valueOf(m, 'nodejs_heap_size_used_bytes') > 0, 'and Node.js metrics')

  // What the proxy path records per request (the lead wires observeRequest into it).
  gw.app.metrics.observeRequest('catalog', 'GET', '/api/catalog', 200, 0.003)
  const after = parsePrometheus(await (await request(`${gw.url}/actuator/prometheus`)).body.text())
  t.equal(valueOf(after, 'transactions_total', { route: 'catalog', method: 'GET', status: '200' }), 1)
  t.equal(valueOf(after, 'http_server_requests_seconds_count', { uri: '/api/catalog', outcome: 'SUCCESS', exception: 'None' }), 1)
})

t.test('/actuator/prometheus answers OpenMetrics when the scraper asks for it', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, routes(origin.url))
  const prometheusAccept = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
  const res = await request(`${gw.url}/actuator/prometheus`, { headers: { accept: prometheusAccept } })
  t.equal(res.headers['content-type'], 'application/openmetrics-text; version=1.0.0; charset=utf-8')
  const om = parsePrometheus(await res.body.text())
  t.ok(om.eof)
  t.equal(om.types.get('resilience4j_circuitbreaker_not_permitted_calls'), 'counter')
  t.equal(valueOf(om, 'resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'orders' }), 0)

  const refused = await request(`${gw.url}/actuator/prometheus`, { headers: { accept: 'application/openmetrics-text;q=0, text/plain' } })
  t.equal(refused.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8', 'q=0 refuses OpenMetrics')
  t.notOk(parsePrometheus(await refused.body.text()).eof)
})

t.test('/actuator/health: Spring\'s document; an open breaker does not take the gateway down', async (t) => {
  const origin = await startUpstream(t)
  // Details are shown to an authorized request (management.health.showDetails: when-authorized, the default).
  const gw = await startGateway(t, `management: {token: ${TOKEN}}\n${routes(origin.url)}`)
  const closedDetails = {
    state: 'CLOSED',
    failureRate: '-1.0%',
    failureRateThreshold: '100.0%',
    slowCallRate: '-1.0%',
    slowCallRateThreshold: '100.0%',
    bufferedCalls: 0,
    failedCalls: 0,
    slowCalls: 0,
    slowFailedCalls: 0,
    notPermittedCalls: 0
  }
  const healthy = await getJson(`${gw.url}/actuator/health`, AUTHORIZED)
  t.equal(healthy.status, 200)
  t.match(healthy.type, /^application\/json/)
  t.same(healthy.body, {
    status: 'UP',
    components: {
      circuitBreakers: {
        status: 'UP',
        details: {
          catalog: { status: 'UP', details: closedDetails },
          orders: { status: 'UP', details: closedDetails }
        }
      },
      livenessState: { status: 'UP' },
      ping: { status: 'UP' },
      readinessState: { status: 'UP' }
    },
    groups: ['liveness', 'readiness']
  })
  t.same(Object.keys(healthy.body.components.circuitBreakers.details), ['catalog', 'orders'], 'sorted by name')

  fail(gw.breakers.get('orders') as CircuitBreaker, 2)
  const open = await getJson(`${gw.url}/actuator/health`, AUTHORIZED)
  t.equal(open.status, 200)
  t.equal(open.body.status, 'UP')
  t.equal(open.body.components.circuitBreakers.status, 'CIRCUIT_OPEN')
  t.same(open.body.components.circuitBreakers.details.orders, {
    status: 'CIRCUIT_OPEN',
    details: { ...closedDetails, state: 'OPEN', bufferedCalls: 2, failedCalls: 2 }
  })

  gw.breakers.get('catalog')?.transition('DISABLE')
  const component = await getJson(`${gw.url}/actuator/health/circuitBreakers`, AUTHORIZED)
  t.equal(component.status, 200)
  t.equal(component.body.details.catalog.status, 'UNKNOWN', 'DISABLED, FORCED_OPEN and METRICS_ONLY are UNKNOWN')
  t.same((await getJson(`${gw.url}/actuator/health/ping`, AUTHORIZED)).body, { status: 'UP' })
  t.same(await getJson(`${gw.url}/actuator/health/liveness`), { status: 200, type: 'application/json; charset=utf-8', body: { status: 'UP' } })
  t.same(await getJson(`${gw.url}/actuator/health/readiness`), { status: 200, type: 'application/json; charset=utf-8', body: { status: 'UP' } })
  const unknown = await getJson(`${gw.url}/actuator/health/db`, AUTHORIZED)
  t.equal(unknown.status, 404)
  t.match(unknown.type, /^application\/problem\+json/)
  t.equal(unknown.body.code, 'BW_ERR_ACTUATOR_NOT_FOUND')
})

t.test('readiness turns DOWN with 503 as soon as a graceful shutdown begins; liveness stays UP', async (t) => {
  let release: (() => void) | undefined
  const origin = await startUpstream(t, (_req, res) => {
    release = () => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('late') }
  })
  const gw = await startGateway(t, `
management: {port: 0, host: 127.0.0.1, token: ${TOKEN}}
${routes(origin.url)}`)
  // A request in flight keeps the main port draining while the management listener still answers.
  // reset: the connection closes after it, so the drain does not wait out the keep-alive timeout.
  const inFlight = request(`${gw.url}/api/orders/1`, { reset: true })
  await waitUntil(() => release !== undefined, 'the request at the origin')
  const closed = gw.app.close()

  let readiness = await getJson(`${gw.actuatorUrl}/actuator/health/readiness`)
  for (let i = 0; readiness.status === 200 && i < 500; i++) readiness = await getJson(`${gw.actuatorUrl}/actuator/health/readiness`)
  t.same(readiness.body, { status: 'DOWN' })
  t.equal(readiness.status, 503)
  const health = await getJson(`${gw.actuatorUrl}/actuator/health`, AUTHORIZED)
  t.equal(health.status, 503)
  t.equal(health.body.status, 'DOWN')
  t.equal(health.body.components.readinessState.status, 'DOWN')
  t.same(await getJson(`${gw.actuatorUrl}/actuator/health`), { status: 503, type: 'application/json; charset=utf-8', body: { status: 'DOWN' } },
    'without the token: the status alone, with the same 503')
  t.same(await getJson(`${gw.actuatorUrl}/actuator/health/liveness`), { status: 200, type: 'application/json; charset=utf-8', body: { status: 'UP' } })

  ;(release as () => void)()
  t.equal((await inFlight).statusCode, 200)
  await closed
})

t.test('readiness on the main port: a probe on a connection open at shutdown gets DOWN, not a refusal', async (t) => {
  let release: (() => void) | undefined
  const origin = await startUpstream(t, (_req, res) => {
    release = () => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '4' }); res.end('late') }
  })
  const gw = await startGateway(t, routes(origin.url))
  const socket = connect((gw.app.server.address() as AddressInfo).port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
  socket.write('GET /api/orders/1 HTTP/1.1\r\nHost: a\r\n\r\n')
  await waitUntil(() => release !== undefined, 'the request at the origin')
  const closed = gw.app.close()
  // Pipelined behind the one in flight: Node parses it once the first answer is written, after shutdown began.
  socket.write('GET /actuator/health/readiness HTTP/1.1\r\nHost: a\r\n\r\n')
  ;(release as () => void)()
  await waitUntil(() => /\{"status":"DOWN"\}$/.test(received), 'the readiness answer')
  t.match(received, /^HTTP\/1\.1 200 OK\r\n[\s\S]*late/)
  t.match(received, /HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*connection: close\r\n/i)
  await closed
})

t.test('/actuator/circuitbreakers lists every breaker, sorted, with Resilience4j\'s ten figures', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, routes(origin.url, '{failureThreshold: 5, failureRateThreshold: 50, minimumCalls: 2, slowCallRateThreshold: 80}'))
  const orders = gw.breakers.get('orders') as CircuitBreaker
  const ok = orders.tryAcquire() as Permit
  orders.onResult(ok, 'success', 5)
  fail(orders, 1)
  const res = await getJson(`${gw.url}/actuator/circuitbreakers`)
  t.equal(res.status, 200)
  t.same(Object.keys(res.body.circuitBreakers), ['catalog', 'orders'])
  t.same(res.body.circuitBreakers.orders, {
    state: 'OPEN',
    failureRate: '50.0%',
    failureRateThreshold: '50.0%',
    slowCallRate: '0.0%',
    slowCallRateThreshold: '80.0%',
    bufferedCalls: 2,
    failedCalls: 1,
    slowCalls: 0,
    slowFailedCalls: 0,
    notPermittedCalls: 0
  })
  t.equal(res.body.circuitBreakers.catalog.failureRate, '-1.0%')
})

t.test('POST /actuator/circuitbreakers/{name}: the bearer token, then the command', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
management:
  token: \${BREAKWATER_ADMIN_TOKEN}
${routes(origin.url)}`, { BREAKWATER_ADMIN_TOKEN: TOKEN })
  const url = `${gw.url}/actuator/circuitbreakers/orders`
  const auth = { authorization: `Bearer ${TOKEN}` }

  const forced = await post(url, '{"updateState":"FORCE_OPEN"}', auth)
  t.equal(forced.status, 200)
  t.same(forced.body, { circuitBreakerName: 'orders', currentState: 'FORCED_OPEN', message: 'orders state has been changed successfully' })
  t.equal(gw.breakers.get('orders')?.state, 'FORCED_OPEN')
  for (const [command, state] of [['DISABLE', 'DISABLED'], ['METRICS_ONLY', 'METRICS_ONLY'], ['CLOSE', 'CLOSED']] as const) {
    const res = await post(url, JSON.stringify({ updateState: command }), { authorization: `bearer  ${TOKEN}` })
    t.equal(res.body.currentState, state, command)
  }

  const missing = await post(url, '{"updateState":"FORCE_OPEN"}')
  t.equal(missing.status, 401)
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="actuator"')
  t.match(missing.headers['content-type'], /^application\/problem\+json/)
  t.match(missing.body, { status: 401, code: 'BW_ERR_ACTUATOR_UNAUTHORIZED' })
  for (const wrong of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, 'Bearer', `Bearer ${TOKEN} extra`]) {
    const res = await post(url, '{"updateState":"FORCE_OPEN"}', { authorization: wrong })
    t.equal(res.status, 401, wrong)
    t.equal(res.headers['www-authenticate'], 'Bearer realm="actuator", error="invalid_token"')
    t.equal(res.body.code, 'BW_ERR_ACTUATOR_UNAUTHORIZED')
  }
  t.equal(gw.breakers.get('orders')?.state, 'CLOSED', 'no refused request changed anything')

  const unknown = await post(`${gw.url}/actuator/circuitbreakers/nope`, '{"updateState":"CLOSE"}', auth)
  t.equal(unknown.status, 404)
  t.match(unknown.body, { code: 'BW_ERR_ACTUATOR_NOT_FOUND', detail: 'no circuit breaker named nope' })
  for (const body of ['{"updateState":"OPEN"}', '{}', '[]', 'null', undefined]) {
    const res = await post(url, body, auth)
    t.equal(res.status, 400, String(body))
    t.equal(res.body.code, 'BW_ERR_ACTUATOR_BAD_REQUEST')
  }
  const notJson = await post(url, '{"updateState":', auth)
  t.equal(notJson.status, 400)
  t.match(notJson.body, { code: 'BW_ERR_ACTUATOR_BAD_REQUEST', detail: 'the body is not valid JSON' })
  const text = await request(url, { method: 'POST', body: 'CLOSE', headers: { ...auth, 'content-type': 'text/plain' } })
  t.equal(text.statusCode, 400)
  t.equal((await text.body.json() as { code: string }).code, 'BW_ERR_ACTUATOR_BAD_REQUEST')
})

t.test('without a configured token every state change is 403', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, routes(origin.url))
  for (const headers of [{}, { authorization: 'Bearer anything' }, { authorization: 'Bearer ' }] as Array<Record<string, string>>) {
    const res = await post(`${gw.url}/actuator/circuitbreakers/orders`, '{"updateState":"FORCE_OPEN"}', headers)
    t.equal(res.status, 403)
    t.match(res.body, { status: 403, code: 'BW_ERR_ACTUATOR_FORBIDDEN' })
  }
  const del = await request(`${gw.url}/actuator/circuitbreakers/orders`, { method: 'DELETE' })
  t.equal(del.statusCode, 403, 'every POST and DELETE under /actuator, before looking for the endpoint')
  await del.body.dump()
  const elsewhere = await getJson(`${gw.url}/actuator/nothing/here`)
  t.equal(elsewhere.status, 404)
  t.equal(elsewhere.body.code, 'BW_ERR_ACTUATOR_NOT_FOUND')
  t.equal(gw.breakers.get('orders')?.state, 'CLOSED')
})

t.test('/actuator/circuitbreakerevents: every breaker\'s events, or one breaker\'s', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, routes(origin.url))
  fail(gw.breakers.get('orders') as CircuitBreaker, 2)
  gw.breakers.get('catalog')?.transition('FORCE_OPEN')

  const all = await getJson(`${gw.url}/actuator/circuitbreakerevents`)
  t.equal(all.status, 200)
  const events = all.body.circuitBreakerEvents as Array<Record<string, unknown>>
  t.equal(events.length, 4)
  for (const event of events) {
    t.match(event, { circuitBreakerName: /^(orders|catalog)$/, type: /^[A-Z_]+$/, creationTime: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ })
  }
  t.same([...events].map((e) => e.creationTime), [...events].map((e) => e.creationTime).sort(), 'ordered by creation time')

  const orders = await getJson(`${gw.url}/actuator/circuitbreakerevents/orders`)
  t.match(orders.body.circuitBreakerEvents, [
    { circuitBreakerName: 'orders', type: 'ERROR', errorMessage: 'upstream answered 502', durationInMs: 20 },
    { circuitBreakerName: 'orders', type: 'ERROR' },
    { circuitBreakerName: 'orders', type: 'STATE_TRANSITION', stateTransition: 'CLOSED_TO_OPEN' }
  ])
  t.equal(orders.body.circuitBreakerEvents.length, 3)
  const catalog = await getJson(`${gw.url}/actuator/circuitbreakerevents/catalog`)
  t.match(catalog.body.circuitBreakerEvents, [{ type: 'STATE_TRANSITION', stateTransition: 'CLOSED_TO_FORCED_OPEN' }])
  const unknown = await getJson(`${gw.url}/actuator/circuitbreakerevents/nope`)
  t.equal(unknown.status, 404)
  t.equal(unknown.body.code, 'BW_ERR_ACTUATOR_NOT_FOUND')
})

t.test('/actuator/info and the /actuator discovery page', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `management: {token: ${TOKEN}}\n${routes(origin.url)}`)
  const info = await getJson(`${gw.url}/actuator/info`, AUTHORIZED)
  t.match(info.body.config?.sha256, /^[0-9a-f]{64}$/, 'the config is named by a SHA-256')
  t.same(info.body, {
    build: { name: 'breakwater', version: PACKAGE.version },
    node: { version: process.versions.node },
    config: { generation: 1, sha256: info.body.config?.sha256 },
    routes: [{ id: 'orders', prefix: '/api/orders' }, { id: 'catalog', prefix: '/api/catalog' }]
  })
  const links = await getJson(`${gw.url}/actuator`)
  t.equal(links.status, 200)
  t.same(links.body._links.self, { href: `${gw.url}/actuator`, templated: false })
  t.same(links.body._links['circuitbreakers-name'], { href: `${gw.url}/actuator/circuitbreakers/{name}`, templated: true })
  t.same(Object.keys(links.body._links).sort(), [
    'bulk', 'bulk-route-redrive', 'circuitbreakerevents', 'circuitbreakerevents-name', 'circuitbreakers', 'circuitbreakers-name', 'health', 'health-path', 'info', 'prometheus', 'refresh', 'self'
  ])
})

t.test('management.health.showDetails when-authorized (the default): details for the management token only', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `management: {token: ${TOKEN}}\n${routes(origin.url)}`)
  const asked: Array<Record<string, string>> = [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }]
  for (const headers of asked) {
    const label = JSON.stringify(headers)
    t.same(await getJson(`${gw.url}/actuator/health`, headers), { status: 200, type: 'application/json; charset=utf-8', body: { status: 'UP' } }, `${label}: status alone`)
    for (const component of ['circuitBreakers', 'ping', 'livenessState', 'nothing']) {
      const hidden = await getJson(`${gw.url}/actuator/health/${component}`, headers)
      t.equal(hidden.status, 404, `${label} ${component}: hidden, whether it exists or not`)
      t.match(hidden.body, { code: 'BW_ERR_ACTUATOR_NOT_FOUND', detail: /management\.health\.showDetails: when-authorized/ })
    }
    t.same((await getJson(`${gw.url}/actuator/health/liveness`, headers)).body, { status: 'UP' }, `${label}: liveness answers`)
    t.same((await getJson(`${gw.url}/actuator/health/readiness`, headers)).body, { status: 'UP' }, `${label}: readiness answers`)
    const info = (await getJson(`${gw.url}/actuator/info`, headers)).body
    t.same(info, {
      build: { name: 'breakwater', version: PACKAGE.version },
      node: { version: process.versions.node },
      config: { generation: 1, sha256: info.config?.sha256 }
    }, `${label}: no routes in the info`)
  }
  const authorized = await getJson(`${gw.url}/actuator/health`, AUTHORIZED)
  t.same(Object.keys(authorized.body.components), ['circuitBreakers', 'livenessState', 'ping', 'readinessState'])
  t.equal((await getJson(`${gw.url}/actuator/health/ping`, AUTHORIZED)).status, 200)
  t.equal((await getJson(`${gw.url}/actuator/info`, AUTHORIZED)).body.routes.length, 2)

  // No token configured: nobody is authorized.
  const tokenless = await startGateway(t, routes(origin.url))
  t.same((await getJson(`${tokenless.url}/actuator/health`, { authorization: 'Bearer anything' })).body, { status: 'UP' })
})

t.test('management.health.showDetails never hides details from the token too; always shows them to anyone', async (t) => {
  const origin = await startUpstream(t)
  const never = await startGateway(t, `management: {token: ${TOKEN}, health: {showDetails: never}}\n${routes(origin.url)}`)
  t.same((await getJson(`${never.url}/actuator/health`, AUTHORIZED)).body, { status: 'UP' })
  const hidden = await getJson(`${never.url}/actuator/health/circuitBreakers`, AUTHORIZED)
  t.equal(hidden.status, 404)
  t.match(hidden.body.detail, /showDetails: never/)
  t.equal((await getJson(`${never.url}/actuator/info`, AUTHORIZED)).body.routes, undefined)
  t.same((await getJson(`${never.url}/actuator/health/readiness`)).body, { status: 'UP' })

  const always = await startGateway(t, `management: {health: {showDetails: always}}\n${routes(origin.url)}`)
  const health = await getJson(`${always.url}/actuator/health`)
  t.equal(health.body.components.circuitBreakers.status, 'UP')
  t.same((await getJson(`${always.url}/actuator/health/ping`)).body, { status: 'UP' })
  t.same((await getJson(`${always.url}/actuator/info`)).body.routes, [{ id: 'orders', prefix: '/api/orders' }, { id: 'catalog', prefix: '/api/catalog' }])
})

t.test('Accept: Spring\'s v3 media type is answered with that type; plain JSON stays the default', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `management: {token: ${TOKEN}}\n${routes(origin.url)}`)
  const V3 = 'application/vnd.spring-boot.actuator.v3+json'
  for (const path of ['/actuator', '/actuator/health', '/actuator/health/liveness', '/actuator/info', '/actuator/circuitbreakers', '/actuator/circuitbreakerevents', '/actuator/bulk']) {
    const v3 = await getJson(`${gw.url}${path}`, { accept: V3 })
    t.equal(v3.status, 200, path)
    t.equal(v3.type, V3, `${path}: the v3 type, as Spring answers it`)
    const plain = await getJson(`${gw.url}${path}`)
    t.equal(plain.type, 'application/json; charset=utf-8', `${path}: no Accept, plain JSON as before`)
    t.same(v3.body, plain.body, `${path}: the same document`)
  }
  const health = `${gw.url}/actuator/health`
  t.equal((await getJson(health, { accept: '*/*' })).type, 'application/json; charset=utf-8')
  t.equal((await getJson(health, { accept: 'application/json' })).type, 'application/json; charset=utf-8')
  t.equal((await getJson(health, { accept: `application/json, ${V3};q=0.5` })).type, 'application/json; charset=utf-8')
  t.equal((await getJson(health, { accept: `${V3}, application/json;q=0.9`, ...AUTHORIZED })).type, V3)
  const posted = await post(`${gw.url}/actuator/circuitbreakers/orders`, '{"updateState":"CLOSE"}', { accept: V3, ...AUTHORIZED })
  t.equal(posted.headers['content-type'], V3, 'a state change answers in v3 too')

  const problem = await getJson(`${gw.url}/actuator/circuitbreakerevents/nope`, { accept: V3 })
  t.equal(problem.status, 404)
  t.match(problem.type, /^application\/problem\+json/, 'a problem stays problem+json')
  const scrape = await request(`${gw.url}/actuator/prometheus`, { headers: { accept: V3 } })
  t.match(scrape.headers['content-type'], /^text\/plain/, 'the scrape keeps its text format')
  await scrape.body.dump()
})

t.test('management.port moves all of /actuator to its own listener', async (t) => {
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
management: {port: 0, host: 127.0.0.1, token: ${TOKEN}}
${routes(origin.url)}`)
  t.not(gw.actuatorUrl, gw.url)
  for (const path of ['/actuator/health', '/actuator/prometheus', '/actuator', '/actuator/circuitbreakers']) {
    const main = await getJson(`${gw.url}${path}`)
    t.equal(main.status, 404, `main port ${path}`)
    t.match(main.type, /^application\/problem\+json/)
    t.equal(main.body.code, 'BW_ERR_ROUTE_NOT_FOUND')
    const res = await request(`${gw.actuatorUrl}${path}`)
    t.equal(res.statusCode, 200, `management port ${path}`)
    await res.body.dump()
  }
  const mainPost = await post(`${gw.url}/actuator/circuitbreakers/orders`, '{"updateState":"FORCE_OPEN"}', { authorization: `Bearer ${TOKEN}` })
  t.equal(mainPost.status, 404)
  const managed = await post(`${gw.actuatorUrl}/actuator/circuitbreakers/orders`, '{"updateState":"FORCE_OPEN"}', { authorization: `Bearer ${TOKEN}` })
  t.equal(managed.body.currentState, 'FORCED_OPEN')
  const unauthorized = await post(`${gw.actuatorUrl}/actuator/circuitbreakers/orders`, '{"updateState":"CLOSE"}')
  t.equal(unauthorized.status, 401)

  const other = await getJson(`${gw.actuatorUrl}/api/orders`)
  t.equal(other.status, 404, 'the management listener proxies nothing')
  t.equal(other.body.code, 'BW_ERR_ACTUATOR_NOT_FOUND')
  t.equal(origin.received.length, 0)
})

t.test('a management port that is taken fails the start', async (t) => {
  const taken = await startUpstream(t)
  const config = parseConfig(`
management: {port: ${taken.port}, host: 127.0.0.1}
${routes(taken.url)}`, 'test.yaml', {})
  const app = await buildServer({ ...config, server: { ...config.server, logLevel: 'silent' } })
  t.teardown(() => app.close())
  await t.rejects(app.listen({ host: '127.0.0.1', port: 0 }), { code: 'EADDRINUSE' })
})
