// The response cache end to end: a real origin, a real gateway, and each store (memory, Redis, Redis Cluster) in turn.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { CACHE_TEST_TOKEN as TOKEN, cacheRoute as route, call, startCacheGateway as startGateway, STORES, type Answer } from '../helpers/cache-gateway.js'
import { FakeClock } from '../helpers/clock.js'
import { startGateway as startPlainGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { waitUntil } from '../helpers/wait.js'

/** An origin answering each path with the headers a test scripts; the body names the path and a counter. */
async function scriptedOrigin (t: Test, headersFor: (req: IncomingMessage) => Record<string, string>): Promise<Upstream> {
  let served = 0
  return await startUpstream(t, (req, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain', ...headersFor(req) })
    res.end(`${req.url ?? ''} #${++served}`)
  })
}

for (const [name, startStore] of STORES) {
  t.test(`on the ${name} store`, async (t) => {
    const store = await startStore(t)

    t.test('a repeat GET is a HIT with the same bytes and an Age; HEAD is answered from it; the counters count', async (t) => {
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
      const origin = await startUpstream(t, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=60' })
        res.end(bytes)
      })
      const clock = FakeClock.wall()
      const gw = await startGateway(t, store, route(origin.url), clock.now)
      const first = await gw.get('/bin?b=2&a=1')
      t.equal(first.headers['x-cache'], 'MISS')
      t.same(first.body, bytes)
      clock.advance(5_000)
      const second = await gw.get('/bin?a=1&b=2')
      t.equal(second.headers['x-cache'], 'HIT', 'the same query in another order')
      t.ok(second.body.equals(bytes), 'byte-exact')
      t.equal(second.headers.age, '5')
      const head = await call(`${gw.url}/bin?a=1&b=2`, { method: 'HEAD' })
      t.equal(head.headers['x-cache'], 'HIT')
      t.equal(head.headers['content-length'], '256')
      t.equal(head.body.length, 0)
      t.equal(origin.received.length, 1, 'the origin saw one request')
      t.equal(await gw.metric('cache_hits_total', { route: 'c' }), 2)
      t.equal(await gw.metric('cache_misses_total', { route: 'c' }), 1)
      t.ok(await gw.metric('cache_operation_latency_seconds_count', { operation: 'get', store: name === 'memory' ? 'memory' : 'redis' }) >= 3)
    })

    t.test('what is stored follows the upstream\'s Cache-Control, Expires and Set-Cookie, and the client\'s Authorization', async (t) => {
      const origin = await scriptedOrigin(t, (req): Record<string, string> => {
        switch (req.url) {
          case '/max-age': return { 'cache-control': 'max-age=1' }
          case '/s-maxage': return { 'cache-control': 'max-age=0, s-maxage=60' }
          case '/no-store': return { 'cache-control': 'no-store, max-age=60' }
          case '/private': return { 'cache-control': 'private, max-age=60' }
          case '/cookie': return { 'cache-control': 'max-age=60', 'set-cookie': 'session=1' }
          case '/auth': return { 'cache-control': 'max-age=60' }
          case '/auth-public': return { 'cache-control': 'public, max-age=60' }
          case '/expires': return { expires: new Date(Date.now() + 60_000).toUTCString() }
          default: return {}
        }
      })
      const clock = FakeClock.wall()
      const gw = await startGateway(t, store, route(origin.url, '{ttl: 60s}'), clock.now)
      const twice = async (path: string, headers?: Record<string, string>): Promise<string> => {
        await gw.get(path, headers)
        return (await gw.get(path, headers)).headers['x-cache'] as string
      }
      t.equal(await twice('/silent'), 'HIT', 'ttl applies when the upstream states no freshness')
      t.equal(await twice('/s-maxage'), 'HIT', 's-maxage wins over max-age in a shared cache')
      t.equal(await twice('/expires'), 'HIT', 'Expires')
      t.equal(await twice('/no-store'), 'MISS')
      t.equal(await twice('/private'), 'MISS')
      t.equal(await twice('/cookie'), 'MISS', 'a Set-Cookie answer is never shared')
      t.equal(await twice('/auth', { authorization: 'Bearer a' }), 'MISS', 'Authorization without public: not stored')
      t.equal(await twice('/auth-public', { authorization: 'Bearer a' }), 'HIT', 'public allows it')
      t.equal((await gw.get('/silent', { 'cache-control': 'no-store' })).headers['x-cache'], 'BYPASS', 'the client\'s no-store')
      t.equal(await twice('/max-age'), 'HIT')
      clock.advance(2_000)
      t.equal((await gw.get('/max-age')).headers['x-cache'], 'MISS', 'the upstream\'s max-age=1 wins over ttl: 60s')
      t.equal(await gw.metric('cache_bypass_total', { route: 'c', reason: 'no-store' }), 3, 'two answers not stored, one request not looked up')
      t.equal(await gw.metric('cache_bypass_total', { route: 'c', reason: 'set-cookie' }), 2)
      t.equal(await gw.metric('cache_bypass_total', { route: 'c', reason: 'authorization' }), 2)
    })

    t.test('Vary: the response\'s fields must match; the route\'s vary keeps one entry per value', async (t) => {
      const origin = await scriptedOrigin(t, () => ({ 'cache-control': 'max-age=60', vary: 'accept-language' }))
      const clock = FakeClock.wall()
      const gw = await startGateway(t, store, route(origin.url) + route(origin.url, '{vary: [accept-language]}').replace('id: c', 'id: v').replace('prefix: /', 'prefix: /v'), clock.now)
      const lang = async (path: string, language: string): Promise<string> => (await gw.get(path, { 'accept-language': language })).headers['x-cache'] as string
      t.same([await lang('/x', 'en'), await lang('/x', 'en'), await lang('/x', 'fr'), await lang('/x', 'fr')], ['MISS', 'HIT', 'MISS', 'HIT'])
      t.same([await lang('/v/x', 'en'), await lang('/v/x', 'fr'), await lang('/v/x', 'en'), await lang('/v/x', 'fr')], ['MISS', 'MISS', 'HIT', 'HIT'])
    })

    t.test('a stale entry with an ETag is revalidated: a 304 refreshes it, the client gets the body or its own 304', async (t) => {
      const origin = await startUpstream(t, (req, res) => {
        if (req.headers['if-none-match'] === '"v1"') {
          res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=1' })
          res.end()
          return
        }
        res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=1', 'content-type': 'text/plain' })
        res.end('version 1')
      })
      const clock = FakeClock.wall()
      const gw = await startGateway(t, store, route(origin.url), clock.now)
      t.equal((await gw.get('/doc', { 'if-none-match': '"v1"' })).status, 200, 'a miss is fetched whole, for the cache')
      t.equal(origin.received[0]?.headers['if-none-match'], undefined)
      clock.advance(2_000)
      const refreshed = await gw.get('/doc')
      t.equal(refreshed.headers['x-cache'], 'REVALIDATED')
      t.equal(refreshed.body.toString(), 'version 1')
      t.equal(origin.received[1]?.headers['if-none-match'], '"v1"', 'the entry\'s validator went upstream')
      const own = await gw.get('/doc', { 'if-none-match': '"v1"' })
      t.equal(own.status, 304, 'the client\'s own validator matches the refreshed entry')
      t.equal(own.headers['x-cache'], 'HIT')
      t.equal(origin.received.length, 2)
    })

    t.test('stale-while-revalidate: stale answers at once, exactly one refresh in the background', async (t) => {
      let version = 1
      // The refresh is held until the stale answers are in, so none of them can be the refreshed entry.
      let release = (): void => {}
      const held = new Promise<void>((resolve) => { release = resolve })
      const origin = await startUpstream(t, (_req, res) => {
        const answer = (): void => {
          res.writeHead(200, { 'cache-control': 'max-age=1', 'content-type': 'text/plain' })
          res.end(`version ${version}`)
        }
        if (version === 1) answer()
        else held.then(answer, () => {})
      })
      const clock = FakeClock.wall()
      const gw = await startGateway(t, store, route(origin.url, '{staleWhileRevalidate: 30s}'), clock.now)
      await gw.get('/doc')
      version = 2
      clock.advance(2_000)
      const answers = await Promise.all(Array.from({ length: 10 }, async () => await gw.get('/doc')))
      t.same(new Set(answers.map((a) => `${String(a.headers['x-cache'])} ${a.body.toString()}`)), new Set(['STALE version 1']))
      t.equal(await gw.metric('cache_stale_served_total', { route: 'c', reason: 'swr' }), 10)
      release()
      await waitUntil(async () => (await gw.get('/doc')).body.toString() === 'version 2', 'the refreshed entry')
      t.equal(origin.received.length, 2, 'one refresh for ten stale answers')
      t.equal((await gw.get('/doc')).headers['x-cache'], 'HIT')
    })

    t.test('stale-if-error: a stale entry answers for an upstream that fails, is down, or whose breaker is open', async (t) => {
      let failing = false
      const origin = await startUpstream(t, (_req, res) => {
        res.writeHead(failing ? 500 : 200, { 'cache-control': 'max-age=1', 'content-type': 'text/plain' })
        res.end(failing ? 'boom' : 'good')
      })
      const clock = FakeClock.wall()
      const gw = await startGateway(t, store, route(origin.url, '{staleIfError: 5m}', '    breaker: {failureThreshold: 2}\n'), clock.now)
      await gw.get('/doc')
      clock.advance(2_000)
      failing = true
      const onError = await gw.get('/doc')
      t.same([onError.status, onError.headers['x-cache'], onError.body.toString()], [200, 'STALE', 'good'], 'a 500 is answered from the entry')
      const seen = origin.received.length
      await gw.get('/doc')
      const onOpen = await gw.get('/doc')
      t.same([onOpen.status, onOpen.headers['x-cache'], onOpen.body.toString()], [200, 'STALE', 'good'], 'the open breaker\'s refusal too')
      t.equal(origin.received.length, seen + 1, 'the second failure opened the breaker; the upstream saw nothing after')
      t.equal(await gw.metric('cache_stale_served_total', { route: 'c', reason: 'breaker' }), 1)
      t.equal(await gw.metric('cache_stale_served_total', { route: 'c', reason: 'error' }), 2)
      clock.advance(400_000)
      t.equal((await gw.get('/doc')).status, 500, 'past the window, the half-open trial\'s failure is the answer')
    })

    t.test('an upstream that is down: stale within stale-if-error, 502 without an entry', async (t) => {
      const origin = await scriptedOrigin(t, () => ({ 'cache-control': 'max-age=1' }))
      const clock = FakeClock.wall()
      const gw = await startGateway(t, store, route(origin.url, '{staleIfError: 5m}'), clock.now)
      await gw.get('/doc')
      await origin.close()
      clock.advance(2_000)
      const stale = await gw.get('/doc')
      t.same([stale.status, stale.headers['x-cache']], [200, 'STALE'])
      t.equal((await gw.get('/other')).status, 502)
    })

    t.test('100 concurrent misses on one key send one upstream request', async (t) => {
      const origin = await startUpstream(t, (_req, res) => {
        setTimeout(() => {
          res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' })
          res.end('shared')
        }, 100)
      })
      const gw = await startGateway(t, store, route(origin.url), Date.now)
      const answers = await Promise.all(Array.from({ length: 100 }, async () => await gw.get('/hot')))
      t.equal(origin.received.length, 1)
      t.ok(answers.every((a) => a.status === 200 && a.body.toString() === 'shared'), 'every client got the answer')
      t.equal(answers.filter((a) => a.headers['x-cache'] === 'MISS').length, 1)
    })

    t.test('a successful write invalidates the path; a purge deletes by route and path prefix', async (t) => {
      const origin = await scriptedOrigin(t, () => ({ 'cache-control': 'max-age=60' }))
      const gw = await startGateway(t, store, route(origin.url), Date.now)
      await gw.get('/items/1')
      t.equal((await gw.get('/items/1?x=1')).headers['x-cache'], 'MISS', 'another query is another entry')
      t.equal((await gw.get('/items/1')).headers['x-cache'], 'HIT')
      t.equal((await call(`${gw.url}/items/1`, { method: 'POST', body: '{}' })).status, 200)
      t.equal((await gw.get('/items/1')).headers['x-cache'], 'MISS', 'invalidated by the POST')
      t.equal((await gw.get('/items/1?x=1')).headers['x-cache'], 'MISS', 'every variant of the path')

      for (const path of ['/a/1', '/a/2', '/b/1']) await gw.get(path)
      const purge = async (query: string, token = TOKEN): Promise<Answer> =>
        await call(`${gw.url}/actuator/cache?${query}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })
      t.equal((await purge('route=c&prefix=/a', 'wrong')).status, 401)
      const byPrefix = await purge('route=c&prefix=/a')
      t.same(JSON.parse(byPrefix.body.toString()), { route: 'c', prefix: '/a', purged: 2 })
      t.same([(await gw.get('/a/1')).headers['x-cache'], (await gw.get('/b/1')).headers['x-cache']], ['MISS', 'HIT'])
      t.ok(JSON.parse((await purge('route=c')).body.toString()).purged >= 4, 'the whole route')
      t.equal((await gw.get('/b/1')).headers['x-cache'], 'MISS')
      t.equal((await purge('route=nope')).status, 404)
      t.equal((await purge('prefix=/a')).status, 400)
    })
  })
}

t.test('Redis killed mid-traffic: no request fails, the cache is bypassed; once back, HITs resume', async (t) => {
  const redis = await startRedis(t)
  const origin = await scriptedOrigin(t, () => ({ 'cache-control': 'max-age=60' }))
  const gw = await startGateway(t, `redis:\n  url: ${redis.url}\n`, route(origin.url), Date.now, '50ms')
  await gw.get('/doc')
  t.equal((await gw.get('/doc')).headers['x-cache'], 'HIT')
  await redis.kill()
  const during = await Promise.all(Array.from({ length: 20 }, async () => await gw.get('/doc')))
  t.ok(during.every((a) => a.status === 200 && a.headers['x-cache'] === 'BYPASS'), 'every request answered, bypassing the cache')
  const authorized = { authorization: `Bearer ${TOKEN}` }
  const health = JSON.parse((await gw.get('/actuator/health', authorized)).body.toString())
  t.match(health, { status: 'UP', components: { redis: { status: 'DOWN' } } }, 'Redis DOWN, the gateway UP')
  t.equal((await gw.get('/actuator/health/readiness')).status, 200)
  t.ok(await gw.metric('cache_errors_total', { operation: 'get' }) >= 1)
  t.ok(await gw.metric('cache_bypass_total', { route: 'c', reason: 'store-error' }) >= 20)

  await redis.restart()
  await waitUntil(async () => (await gw.get('/doc')).headers['x-cache'] === 'HIT', 'HITs after Redis is back', 10_000, 50)
  t.match(JSON.parse((await gw.get('/actuator/health', authorized)).body.toString()), { components: { redis: { status: 'UP' } } })
})

t.test('a slow Redis never slows the gateway past commandTimeout', async (t) => {
  const redis = await startRedis(t)
  const origin = await scriptedOrigin(t, () => ({ 'cache-control': 'max-age=60' }))
  const gw = await startGateway(t, `redis:\n  url: ${redis.url}\n`, route(origin.url), Date.now, '50ms')
  await gw.get('/doc')
  redis.pause()
  t.teardown(() => { redis.resume() })
  const started = Date.now()
  const answer = await gw.get('/doc')
  t.same([answer.status, answer.headers['x-cache']], [200, 'BYPASS'])
  t.ok(Date.now() - started < 1_000, `answered in ${Date.now() - started} ms`)
})

t.test('the in-process tier answers repeat reads while Redis hangs', async (t) => {
  const redis = await startRedis(t)
  const origin = await scriptedOrigin(t, () => ({ 'cache-control': 'max-age=60' }))
  const gw = await startGateway(t, `redis:\n  url: ${redis.url}\n`, route(origin.url, '{memory: {maxEntries: 100, ttl: 30s}}'), Date.now, '50ms')
  await gw.get('/doc')
  t.equal((await gw.get('/doc')).headers['x-cache'], 'HIT')
  redis.pause()
  t.teardown(() => { redis.resume() })
  const answer = await gw.get('/doc')
  t.same([answer.status, answer.headers['x-cache'], answer.body.toString()], [200, 'HIT', '/doc #1'], 'from the tier, without Redis')
  t.equal(await gw.metric('cache_errors_total', { operation: 'get' }), 0)
})

t.test('a background refresh that fails leaves the stale entry in place and counts the failure', async (t) => {
  const origin = await scriptedOrigin(t, () => ({ 'cache-control': 'max-age=1' }))
  const clock = FakeClock.wall()
  const gw = await startGateway(t, '', route(origin.url, '{staleWhileRevalidate: 1m}'), clock.now)
  await gw.get('/doc')
  await origin.close()
  clock.advance(2_000)
  t.equal((await gw.get('/doc')).headers['x-cache'], 'STALE')
  await waitUntil(async () => await gw.metric('resilience4j_circuitbreaker_calls_seconds_count', { name: 'c', kind: 'failed' }) === 1, 'the failed refresh')
  const again = await gw.get('/doc')
  t.same([again.status, again.headers['x-cache'], again.body.toString()], [200, 'STALE', '/doc #1'])
})

t.test('a Redis that is away at start: the gateway starts, bypasses the cache, and warns once per 30 s, not per request', async (t) => {
  const redis = await startRedis(t)
  await redis.stop()
  const origin = await scriptedOrigin(t, () => ({ 'cache-control': 'max-age=60' }))
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  const { url } = await startPlainGateway(t, `redis:\n  url: ${redis.url}\n  connectTimeout: 200ms\nroutes:\n${route(origin.url)}`, { logger })
  for (let i = 0; i < 10; i++) t.equal((await call(`${url}/doc`)).headers['x-cache'], 'BYPASS')
  const warnings = lines.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('cache bypassed'))
  t.equal(warnings.length, 1, 'one warning for ten bypasses and the reconnect attempts')
  t.equal(origin.received.length, 10, 'every request was proxied')
})

t.test('concurrent misses on two gateway instances sharing Redis send one upstream request', async (t) => {
  const redis = await startRedis(t)
  const origin = await startUpstream(t, (_req, res) => {
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' })
      res.end('shared')
    }, 200)
  })
  // Both instances write under one prefix, as the replicas of one deployment do.
  const store = `redis:\n  url: ${redis.url}\n  keyPrefix: "shared:"\n  commandTimeout: 1s\n`
  const instances = await Promise.all([0, 1].map(async () => {
    return (await startPlainGateway(t, `${store}routes:\n${route(origin.url)}`)).url
  }))
  // The Host is in the key: replicas behind one load balancer see the same one.
  const answers = await Promise.all(Array.from({ length: 40 }, async (_, i) =>
    await call(`${instances[i % 2] as string}/hot`, { headers: { host: 'api.example.com' } })))
  t.equal(origin.received.length, 1, 'the instance without the lock waited for the entry')
  t.ok(answers.every((a) => a.status === 200 && a.body.toString() === 'shared'))
  t.equal(answers.filter((a) => a.headers['x-cache'] === 'MISS').length, 1)
})

t.test('a stale answer in place of an open breaker\'s refusal is no failed retry call; a refusal answered as such is one', async (t) => {
  let failing = false
  const origin = await startUpstream(t, (_req, res) => {
    res.writeHead(failing ? 500 : 200, { 'cache-control': 'max-age=1', 'content-type': 'text/plain' })
    res.end(failing ? 'boom' : 'good')
  })
  const clock = FakeClock.wall()
  const gw = await startGateway(t, '', route(origin.url, '{staleIfError: 5m}', '    breaker: {failureThreshold: 2}\n    retry: {retries: 1}\n'), clock.now)
  await gw.get('/doc')
  clock.advance(2_000)
  failing = true
  const failed = async (): Promise<number> => await gw.metric('resilience4j_retry_calls_total', { name: 'c', kind: 'failed_without_retry' })
  t.same([(await gw.get('/doc')).headers['x-cache'], (await gw.get('/doc')).headers['x-cache']], ['STALE', 'STALE'], 'two 500s: the breaker opens')
  t.equal(await failed(), 2, 'the two failed calls')
  const onOpen = await gw.get('/doc')
  t.same([onOpen.status, onOpen.headers['x-cache']], [200, 'STALE'])
  t.equal(await failed(), 2, 'the stale answer in place of the refusal: the client got its answer')
  t.equal(await gw.metric('resilience4j_circuitbreaker_not_permitted_calls_total', { name: 'c' }), 1, 'a call the breaker did not permit')
  const refused = await gw.get('/other')
  t.equal(refused.status, 503)
  t.equal(await failed(), 3, 'the refusal answered with 503')
})
