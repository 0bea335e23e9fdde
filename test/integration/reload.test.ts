// Hot reload in-process: POST /actuator/refresh applies a config file whole or refuses it whole, keeps what a route
// keeps (breaker state, pools), and loses no request or accepted bulk item while routes come and go.
import { once } from 'node:events'
import { readdir, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { Agent, Pool, request } from 'undici'
import WebSocket, { WebSocketServer } from 'ws'
import { DEFAULT_WATCH_DEBOUNCE_MS } from '../../src/config/index.js'
import { writeConfig } from '../helpers/cli.js'
import { startGateway, type Gateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { startUpstream, type Upstream, type UpstreamHandler } from '../helpers/upstream.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

const TOKEN = 'reload-token'
const AUTHORIZED = { authorization: `Bearer ${TOKEN}` }

interface Answer { status: number, type: string, body: any }

async function refresh (gw: Gateway, headers: Record<string, string> = AUTHORIZED): Promise<Answer> {
  const res = await request(`${gw.url}/actuator/refresh`, { method: 'POST', headers })
  const text = await res.body.text()
  return { status: res.statusCode, type: String(res.headers['content-type']), body: text === '' ? null : JSON.parse(text) }
}

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, text: string }> {
  const res = await request(url, { headers })
  return { status: res.statusCode, text: await res.body.text() }
}

/** A metric's sample value in the Prometheus text, or undefined. */
async function sample (gw: Gateway, series: string): Promise<number | undefined> {
  const text = (await get(`${gw.url}/actuator/prometheus`)).text
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/** A gateway started from a file that tests rewrite and reload. */
async function fileGateway (t: Test, yaml: string): Promise<{ gw: Gateway, file: string }> {
  const file = await writeConfig(t, yaml)
  const gw = await startGateway(t, yaml, { configFile: file })
  return { gw, file }
}

const header = `server: {logLevel: silent}\nmanagement: {token: ${TOKEN}}\nroutes:\n`
const route = (id: string, prefix: string, upstream: Upstream, extra = ''): string =>
  `  - id: ${id}\n    prefix: ${prefix}\n    upstream: ${upstream.url}\n${extra}`

t.test('a refresh adds, changes and removes routes, answers what it did, and counts its generation', async (t) => {
  const one = await startUpstream(t)
  const two = await startUpstream(t)
  const { gw, file } = await fileGateway(t, header + route('a', '/a', one) + route('b', '/b', one))
  const infoBefore = (await get(`${gw.url}/actuator/info`)).text
  t.equal((await get(`${gw.url}/c/x`)).status, 404, 'c is not a route yet')

  await writeFile(file, header + route('a', '/a', one, '    timeout: 7s\n') + route('c', '/c', two))
  const answer = await refresh(gw)
  t.equal(answer.status, 200)
  t.match(answer.type, /^application\/json/)
  t.same(answer.body, { generation: 2, changed: ['a'], added: ['c'], removed: ['b'] }, 'exactly the contract\'s shape')

  t.equal((await get(`${gw.url}/c/x`)).status, 200, 'the added route answers')
  t.equal(two.received.at(-1)?.url, '/c/x', 'through its upstream')
  t.equal((await get(`${gw.url}/b/x`)).status, 404, 'the removed route is gone')
  t.equal((await get(`${gw.url}/a/x`)).status, 200, 'the changed route answers')
  t.equal(await sample(gw, 'config_generation'), 2)
  t.equal(await sample(gw, 'config_reloads_total{result="success"}'), 1)
  t.equal(await sample(gw, 'config_reloads_total{result="failure"}'), 0)
  const loadedAt = await sample(gw, 'config_last_reload_success_timestamp_seconds') as number
  t.ok(Math.abs(loadedAt - Date.now() / 1000) < 60, `the reload's time is now (${loadedAt})`)
  const info = JSON.parse((await get(`${gw.url}/actuator/info`)).text) as { config: { generation: number, sha256: string } }
  t.equal(info.config.generation, 2)
  t.not(info.config.sha256, (JSON.parse(infoBefore) as { config: { sha256: string } }).config.sha256, 'the file\'s new SHA-256')

  const again = await refresh(gw)
  t.same(again.body, { generation: 3, changed: [], added: [], removed: [] }, 'the same file again is a new generation that changes nothing')
})

t.test('a refresh is a write: without the token 401, without a token configured 403', async (t) => {
  const origin = await startUpstream(t)
  const { gw } = await fileGateway(t, header + route('a', '/a', origin))
  const missing = await refresh(gw, {})
  t.equal(missing.status, 401)
  t.equal(missing.body.code, 'BW_ERR_ACTUATOR_UNAUTHORIZED')
  const open = await fileGateway(t, `server: {logLevel: silent}\nroutes:\n${route('a', '/a', origin)}`)
  t.equal((await refresh(open.gw)).status, 403)
  t.equal(await sample(gw, 'config_generation'), 1, 'nothing was reloaded')
})

t.test('a bad file is refused whole: every error in the answer, the old config keeps serving', async (t) => {
  const origin = await startUpstream(t)
  const good = header + route('a', '/a', origin)
  const { gw, file } = await fileGateway(t, good)
  const bad = [
    { what: 'a YAML error', yaml: `${good}  - id: [unclosed\n`, error: /YAML|flow/i },
    { what: 'an unknown key', yaml: `${good}    colour: blue\n${route('b', '/b', origin)}`, error: /routes\[0\]\.colour: unknown key/ },
    { what: 'a duplicate id', yaml: `${good}${route('a', '/z', origin)}`, error: /routes\[1\]\.id: duplicate route id "a"/ }
  ]
  for (const [i, { what, yaml, error }] of bad.entries()) {
    await writeFile(file, yaml)
    const answer = await refresh(gw)
    t.equal(answer.status, 400, `${what}: 400`)
    t.match(answer.type, /^application\/problem\+json/)
    t.equal(answer.body.code, 'BW_ERR_CONFIG_INVALID')
    t.match(answer.body.detail, /generation 1 keeps serving/)
    t.ok(answer.body.errors.length >= 1, `${what}: its errors are listed`)
    t.match(answer.body.errors[0].text, error, `${what}: named in the answer`)
    t.match(answer.body.errors[0].text, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ `), `${what}: file:line:col`)
    t.equal((await get(`${gw.url}/a/x`)).status, 200, `${what}: the old route still answers`)
    t.equal((await get(`${gw.url}/b/x`)).status, 404, `${what}: nothing of the bad file was applied`)
    t.equal(await sample(gw, 'config_reloads_total{result="failure"}'), i + 1)
  }
  t.equal(await sample(gw, 'config_generation'), 1)
  await writeFile(file, good + route('b', '/b', origin))
  t.equal((await refresh(gw)).body.generation, 2, 'a good file after bad ones applies')
})

t.test('a breaker OPEN before a reload that leaves it alone is OPEN after; one whose settings changed starts CLOSED', async (t) => {
  const failing: UpstreamHandler = (_req, res) => {
    res.writeHead(500)
    res.end()
  }
  const origin = await startUpstream(t, failing)
  const other = await startUpstream(t)
  const breaker = '    breaker: {failureThreshold: 2, recoveryTimeout: 1h}\n'
  const { gw, file } = await fileGateway(t, header + route('kept', '/kept', origin, breaker) + route('tuned', '/tuned', origin, breaker))
  for (const path of ['/kept/x', '/kept/x', '/tuned/x', '/tuned/x']) t.equal((await get(`${gw.url}${path}`)).status, 500)
  t.equal((await get(`${gw.url}/kept/x`)).status, 503, 'kept is open')
  t.equal((await get(`${gw.url}/tuned/x`)).status, 503, 'tuned is open')

  // kept: only its upstream's neighbours change; tuned: its breaker settings change.
  await writeFile(file, header + route('kept', '/kept', origin, breaker) + route('tuned', '/tuned', origin, '    breaker: {failureThreshold: 3, recoveryTimeout: 1h}\n') +
    route('new', '/new', other))
  t.same((await refresh(gw)).body, { generation: 2, changed: ['tuned'], added: ['new'], removed: [] })
  const breakers = JSON.parse((await get(`${gw.url}/actuator/circuitbreakers`)).text) as { circuitBreakers: Record<string, { state: string }> }
  t.equal(breakers.circuitBreakers.kept?.state, 'OPEN', 'the untouched breaker is still OPEN')
  t.equal(breakers.circuitBreakers.tuned?.state, 'CLOSED', 'the changed one starts CLOSED')
  t.equal((await get(`${gw.url}/kept/x`)).status, 503, 'and still refuses')
  t.equal((await get(`${gw.url}/tuned/x`)).status, 500, 'the new breaker lets calls through')
  const events = JSON.parse((await get(`${gw.url}/actuator/circuitbreakerevents/kept`)).text) as { circuitBreakerEvents: Array<{ type: string }> }
  t.ok(events.circuitBreakerEvents.some((event) => event.type === 'STATE_TRANSITION'), 'the kept breaker keeps its events')
})

t.test('settings that take a restart are reported, the rest applied', async (t) => {
  const origin = await startUpstream(t)
  const { gw, file } = await fileGateway(t, header + route('a', '/a', origin))
  await writeFile(file, `server: {logLevel: silent, port: 1, maxHeaders: 50}\nmanagement: {token: ${TOKEN}}\nroutes:\n${route('a', '/a', origin)}${route('b', '/b', origin)}`)
  const answer = await refresh(gw)
  t.equal(answer.status, 200)
  t.same(answer.body, { generation: 2, changed: [], added: ['b'], removed: [], restartRequired: ['server.port', 'server.maxHeaders'] })
  t.equal((await get(`${gw.url}/b/x`)).status, 200, 'the rest applied, on the port it was listening on')
})

t.test('a bulk route removed by a reload delivers every item it accepted, exactly once', async (t) => {
  const batches: Array<Array<{ n: number }>> = []
  const origin = await startUpstream(t, (_req, res, body) => {
    const batch = JSON.parse(body.toString('utf8')) as Array<{ n: number }>
    batches.push(batch)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(batch.map((item) => ({ status: 201, n: item.n }))))
  })
  // maxWait is long: the batch goes because the reload retires the route, not because its time came.
  const bulk = '    bulk: {path: /events/_bulk, batchSize: 1000, maxWait: 1h}\n'
  const { gw, file } = await fileGateway(t, header + route('events', '/events', origin, bulk) + route('other', '/other', origin))
  const total = 200
  // Each client waits for its item's batch: one connection each.
  const clients = new Pool(gw.url, { connections: total })
  t.teardown(() => clients.close())
  const answers = Promise.all(Array.from({ length: total }, async (_, n) => {
    const res = await clients.request({ method: 'POST', path: '/events', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }) })
    return { status: res.statusCode, body: await res.body.json() as { n: number } }
  }))
  await waitUntil(async () => (JSON.parse((await get(`${gw.url}/actuator/bulk`)).text) as { routes: { events?: { pending: number } } }).routes.events?.pending === total,
    `${total} items pending`, 10_000)

  await writeFile(file, header + route('other', '/other', origin))
  t.same((await refresh(gw)).body, { generation: 2, changed: [], added: [], removed: ['events'] })
  const answered = await withDeadline(answers, 'every client\'s answer', 10_000)
  t.equal(answered.filter((answer, n) => answer.status === 201 && answer.body.n === n).length, total, 'every client got its own 201')
  const arrived = batches.flat().map((item) => item.n).sort((a, b) => a - b)
  t.same(arrived, Array.from({ length: total }, (_, n) => n), 'every item arrived upstream exactly once')
  const after = await clients.request({ method: 'POST', path: '/events', headers: { 'content-type': 'application/json' }, body: '{"n":-1}' })
  await after.body.dump()
  t.equal(after.statusCode, 404, 'the route takes no more items')
})

/** The descriptors this process holds open. */
async function openDescriptors (): Promise<number> {
  return (await readdir('/proc/self/fd')).length
}

t.test('100 reloads under 64 keep-alive clients: no failed, reset or truncated answer; descriptors back to their baseline', async (t) => {
  const body = 'x'.repeat(4096)
  const stable = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length })
    res.end(body)
  })
  const coming = await startUpstream(t)
  const going = await startUpstream(t)
  const transient = await startUpstream(t)
  // A and B alternate. The stable route stays (a header it adds flips, so it is rebuilt on its kept pool); `going`
  // and `coming` swap; `moving` changes its upstream; the transient upstream is only B's, so its pool opens with B
  // and closes after it.
  const configA = header + route('stable', '/s', stable) + route('going', '/g', going) + route('moving', '/m', coming)
  const configB = header + route('stable', '/s', stable, '    headers: {x-generation: b}\n') + route('coming', '/c', transient) + route('moving', '/m', going)
  const { gw, file } = await fileGateway(t, configA)
  const agent = new Agent({ connections: 64, pipelining: 1 })
  // Warm: the gateway's pools and the clients' connections.
  await Promise.all(Array.from({ length: 64 }, async () => { await (await request(`${gw.url}/s/warm`, { dispatcher: agent })).body.text() }))
  for (const path of ['/g/warm', '/m/warm']) await (await request(`${gw.url}${path}`, { dispatcher: agent })).body.text()
  await agent.close()
  const baseline = await openDescriptors()
  let upstreamConnections = 0
  stable.server.on('connection', () => { upstreamConnections++ })

  const clients = new Pool(gw.url, { connections: 64 })
  const run = { stopped: false }
  let failures = 0
  let answered = 0
  const failuresSeen: string[] = []
  const client = async (): Promise<void> => {
    while (!run.stopped) {
      try {
        const res = await clients.request({ method: 'GET', path: '/s/x' })
        const text = await res.body.text()
        if (res.statusCode !== 200 || text.length !== body.length) throw new Error(`${res.statusCode} with ${text.length} bytes`)
        answered++
      } catch (err) {
        failures++
        if (failuresSeen.length < 5) failuresSeen.push((err as Error).message)
      }
    }
  }
  const load = Array.from({ length: 64 }, async () => { await client() })
  const deadline = Date.now() + 60_000
  for (let i = 0; i < 100 && Date.now() < deadline; i++) {
    await writeFile(file, i % 2 === 0 ? configB : configA)
    const answer = await refresh(gw)
    if (answer.status !== 200) t.fail(`reload ${i + 1} answered ${answer.status}`)
    // A connection in the pool of the route that just came: it must close with the route.
    const came = await get(`${gw.url}${i % 2 === 0 ? '/c/x' : '/g/x'}`)
    if (came.status !== 200) t.fail(`after reload ${i + 1} the new route answered ${came.status}`)
  }
  run.stopped = true
  await withDeadline(Promise.all(load), 'the clients to stop', 10_000)
  await clients.close()
  t.equal(await sample(gw, 'config_generation'), 101, 'all 100 reloads applied')
  t.equal(failures, 0, `no failed, reset or truncated answer among ${answered} (${failuresSeen.join('; ')})`)
  t.ok(answered >= 100, `the clients were answered throughout (${answered})`)
  // A pool made again at each reload would connect 64 times per reload.
  t.ok(upstreamConnections < 64, `the stable route kept its warm pool (${upstreamConnections} new upstream connections)`)
  t.ok(transient.received.length >= 50, `the transient upstream was used with every B (${transient.received.length})`)
  await writeFile(file, configA)
  await refresh(gw)
  const connectionsTo = async (upstream: Upstream): Promise<number> =>
    await new Promise((resolve, reject) => { upstream.server.getConnections((err, count) => { if (err === null) resolve(count); else reject(err) }) })
  await waitUntil(async () => await connectionsTo(transient) === 0, 'the pool of the removed upstream to close', 10_000)
  t.pass('the pool of an upstream no route names any more closed its connections')
  await waitUntil(async () => await openDescriptors() <= baseline, `descriptors back to ${baseline}`, 10_000)
  t.pass('descriptors back to their baseline')
})

t.test('a WebSocket tunnel of a removed route stays open until server.shutdownTimeout after the reload', async (t) => {
  const sockets = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  sockets.on('connection', (socket) => { socket.on('message', (data) => { socket.send(data) }) })
  await once(sockets, 'listening')
  t.teardown(async () => {
    for (const client of sockets.clients) client.terminate()
    await new Promise((resolve) => sockets.close(resolve))
  })
  const origin = { url: `http://127.0.0.1:${(sockets.address() as AddressInfo).port}` } as unknown as Upstream
  const plain = await startUpstream(t)
  const start = `server: {logLevel: silent, shutdownTimeout: 500ms}\nmanagement: {token: ${TOKEN}}\nroutes:\n`
  const { gw, file } = await fileGateway(t, start + route('live', '/live', origin, '    websocket: true\n') + route('plain', '/plain', plain))
  const client = new WebSocket(`ws://127.0.0.1:${gw.port}/live/feed`)
  t.teardown(() => client.terminate())
  await once(client, 'open')

  await writeFile(file, start + route('plain', '/plain', plain))
  t.same((await refresh(gw)).body, { generation: 2, changed: [], added: [], removed: ['live'] })
  const closed = once(client, 'close')
  const reloadedAt = Date.now()
  client.send('still there')
  const [echo] = await once(client, 'message') as [Buffer]
  t.equal(echo.toString(), 'still there', 'the tunnel outlives its route')
  await withDeadline(closed, 'the tunnel to be ended', 5_000)
  t.ok(Date.now() - reloadedAt >= 400, `ended at the shutdown timeout, not at once (${Date.now() - reloadedAt} ms)`)
  const refused = await request(`${gw.url}/live/feed`)
  await refused.body.dump()
  t.equal(refused.statusCode, 404, 'the route is gone for new requests')
})

t.test('a route that keeps its id keeps its cached entries, in memory and in Redis behind its tier', async (t) => {
  const origin = await startUpstream(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' })
    res.end(`answer for ${req.url ?? ''}`)
  })
  const redis = await startRedis(t)
  for (const store of ['memory', 'redis'] as const) {
    const top = store === 'memory' ? header : `server: {logLevel: silent}\nmanagement: {token: ${TOKEN}}\nredis: {url: ${redis.url}}\nroutes:\n`
    const cache = store === 'memory' ? '    cache: {}\n' : '    cache: {memory: {maxEntries: 100, ttl: 1m}}\n'
    const { gw, file } = await fileGateway(t, top + route('docs', '/docs', origin, cache))
    const xCache = async (): Promise<string> => String((await request(`${gw.url}/docs/a`)).headers['x-cache'])
    t.equal(await xCache(), 'MISS', `${store}: the first request misses`)
    t.equal(await xCache(), 'HIT', `${store}: the second hits`)
    const seen = origin.received.length
    // The route changes (its timeout), its id and its cache settings stay.
    await writeFile(file, top + route('docs', '/docs', origin, `${cache}    timeout: 9s\n`))
    t.same((await refresh(gw)).body, { generation: 2, changed: ['docs'], added: [], removed: [] })
    t.equal(await xCache(), 'HIT', `${store}: still a hit after the reload`)
    t.equal(origin.received.length, seen, `${store}: the upstream was not asked again`)
  }
})

t.test('server.watchConfig: an edited file is reloaded without being asked; the same bytes written again are not', async (t) => {
  const origin = await startUpstream(t)
  const watching = `server: {logLevel: silent, watchConfig: true}\nmanagement: {token: ${TOKEN}}\nroutes:\n`
  const { gw, file } = await fileGateway(t, watching + route('a', '/a', origin))
  await writeFile(file, watching + route('a', '/a', origin) + route('b', '/b', origin))
  await waitUntil(async () => (await get(`${gw.url}/b/x`)).status === 200, 'the added route to answer', 10_000)
  t.equal(await sample(gw, 'config_generation'), 2, 'one reload for the edit')
  const reloads = await sample(gw, 'config_reloads_total{result="success"}')
  // The same bytes again: past three debounce periods (a bounded wait for something that must not happen), no reload.
  await writeFile(file, watching + route('a', '/a', origin) + route('b', '/b', origin))
  await delay(3 * DEFAULT_WATCH_DEBOUNCE_MS)
  t.equal(await sample(gw, 'config_reloads_total{result="success"}'), reloads, 'an unchanged file is not reloaded')
  await writeFile(file, watching + route('a', '/a', origin) + route('c', '/c', origin))
  await waitUntil(async () => (await get(`${gw.url}/c/x`)).status === 200, 'the next edit to apply', 10_000)
  t.equal(await sample(gw, 'config_reloads_total{result="success"}'), (reloads as number) + 1, 'and the next change is')
})

t.test('a config file that cannot be read is refused like an invalid one', async (t) => {
  const origin = await startUpstream(t)
  const { gw, file } = await fileGateway(t, header + route('a', '/a', origin))
  await rm(file)
  const answer = await refresh(gw)
  t.equal(answer.status, 400)
  t.match(answer.body.errors[0].text, /cannot read the config file/)
  t.equal((await get(`${gw.url}/a/x`)).status, 200, 'the old config keeps serving')
})
