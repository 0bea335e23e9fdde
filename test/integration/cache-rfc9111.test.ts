// RFC 9111 details end to end: 304s that select nothing (Python's http.server), Location invalidation, targeted fields
// (RFC 9213), chunked bodies stored intact. A real origin, a real gateway, memory and Redis stores.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { cacheRoute as route, call, startCacheGateway as startGateway } from '../helpers/cache-gateway.js'
import { FakeClock } from '../helpers/clock.js'
import { startRedis } from '../helpers/redis.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

/** `python3 -m http.server` serving a directory with one file, on a port it picks; stopped in teardown. */
async function startPythonServer (t: Test): Promise<{ url: string, write: (text: string) => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'bw-python-'))
  const file = join(dir, 'doc.txt')
  // An hour old, so a 304 is what a conditional request with its Last-Modified gets.
  const write = async (text: string): Promise<void> => {
    await writeFile(file, text)
    const mtime = new Date(Date.now() - 3_600_000)
    await utimes(file, mtime, mtime)
  }
  await write('version 1')
  const child = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(async () => {
    child.kill()
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
    await rm(dir, { recursive: true, force: true })
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.resume()
  await waitUntil(() => /port (\d+)/.test(output), 'python3 -m http.server to listen', 10_000)
  return { url: `http://127.0.0.1:${(/port (\d+)/.exec(output) as RegExpExecArray)[1] as string}`, write }
}

t.test('behind python3 -m http.server, whose 304 has no Last-Modified: refetched after the ttl, never stuck at STALE', async (t) => {
  const python = await startPythonServer(t)
  const clock = FakeClock.wall()
  const gw = await startGateway(t, '', route(python.url, '{ttl: 1s, staleIfError: 5m}'), clock.now)
  t.equal((await gw.get('/doc.txt')).headers['x-cache'], 'MISS')
  t.equal((await gw.get('/doc.txt')).headers['x-cache'], 'HIT')
  const seen: string[] = []
  for (let round = 0; round < 3; round++) {
    clock.advance(2_000)
    const stale = await gw.get('/doc.txt')
    t.equal(stale.body.toString(), 'version 1')
    seen.push(String(stale.headers['x-cache']), String((await gw.get('/doc.txt')).headers['x-cache']))
  }
  // Its 304 selects nothing (RFC 9111 section 4.3.4: the stored response has a Last-Modified, the 304 none), so the
  // gateway asks again without validators and stores the 200: a MISS, then HITs until the next expiry.
  t.same(seen, ['MISS', 'HIT', 'MISS', 'HIT', 'MISS', 'HIT'])
  t.equal(await gw.metric('cache_stale_served_total', { route: 'c', reason: 'error' }), 0, 'no 304 counts as an error')
  t.equal(await gw.metric('cache_hits_total', { route: 'c' }), 4)
  await python.write('version 2')
  clock.advance(2_000)
  t.equal((await gw.get('/doc.txt')).body.toString(), 'version 2', 'a changed file is fetched, not served stale')
})

/** An origin that answers conditional requests with a 304 carrying `notModified`'s fields. */
async function conditionalOrigin (t: Test, notModified: () => Record<string, string>, headers: Record<string, string>): Promise<Upstream> {
  let served = 0
  return await startUpstream(t, (req, res) => {
    if (req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined) {
      res.writeHead(304, notModified())
      res.end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain', ...headers })
    res.end(`body #${++served}`)
  })
}

t.test('a 304 that repeats the stored validator refreshes the entry; one with another validator is fetched again', async (t) => {
  let tag = '"a"'
  const origin = await conditionalOrigin(t, () => ({ etag: tag, 'cache-control': 'max-age=1' }), { etag: '"a"', 'cache-control': 'max-age=1' })
  const clock = FakeClock.wall()
  const gw = await startGateway(t, '', route(origin.url), clock.now)
  await gw.get('/doc')
  clock.advance(2_000)
  const refreshed = await gw.get('/doc')
  t.same([refreshed.headers['x-cache'], refreshed.body.toString()], ['REVALIDATED', 'body #1'])
  t.equal((await gw.get('/doc')).headers['x-cache'], 'HIT')
  tag = '"b"'
  clock.advance(2_000)
  const refetched = await gw.get('/doc')
  t.same([refetched.status, refetched.headers['x-cache'], refetched.body.toString()], [200, 'MISS', 'body #2'])
  t.same(origin.received.slice(-2).map((r) => r.headers['if-none-match'] ?? 'none'), ['"a"', 'none'], 'the second request went without validators')
  t.equal((await gw.get('/doc')).headers['x-cache'], 'HIT', 'the refetched answer was stored')
  t.equal(await gw.metric('cache_stale_served_total', { route: 'c', reason: 'error' }), 0)
})

t.test('an origin that answers 304 to a request without validators gets its 304 relayed, once', async (t) => {
  const origin: Upstream = await startUpstream(t, (_req, res) => {
    // The first request gets the whole answer, every later one a 304 without validators.
    if (origin.received.length > 1) {
      res.writeHead(304, {})
      res.end()
      return
    }
    res.writeHead(200, { 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT', 'cache-control': 'max-age=1' })
    res.end('whole')
  })
  const clock = FakeClock.wall()
  const gw = await startGateway(t, '', route(origin.url), clock.now)
  await gw.get('/doc')
  clock.advance(2_000)
  const answer = await gw.get('/doc')
  t.equal(answer.status, 304)
  t.equal(origin.received.length, 3, 'the conditional request, then one unconditional: no loop')
})

t.test('stale-while-revalidate: a background refresh whose 304 selects nothing fetches the whole answer', async (t) => {
  let version = 1
  const origin = await startUpstream(t, (req, res) => {
    if (req.headers['if-modified-since'] !== undefined) {
      res.writeHead(304, {})
      res.end()
      return
    }
    res.writeHead(200, { 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT', 'cache-control': 'max-age=1, stale-while-revalidate=60' })
    res.end(`version ${version}`)
  })
  const clock = FakeClock.wall()
  const gw = await startGateway(t, '', route(origin.url), clock.now)
  await gw.get('/doc')
  version = 2
  clock.advance(2_000)
  t.same([(await gw.get('/doc')).headers['x-cache']], ['STALE'])
  await waitUntil(async () => (await gw.get('/doc')).body.toString() === 'version 2', 'the background refetch')
  t.same(origin.received.map((r) => r.headers['if-modified-since'] === undefined ? 'plain' : 'conditional'), ['plain', 'conditional', 'plain'])
})

for (const [name, startStore] of [
  ['memory', async () => ''],
  ['redis', async (t: Test) => `redis:\n  url: ${(await startRedis(t)).url}\n`]
] as const) {
  t.test(`on the ${name} store`, async (t) => {
    const store = await startStore(t)

    t.test('a successful write invalidates its Location and Content-Location on the same origin, not another origin\'s', async (t) => {
      const origin = await startUpstream(t, (req, res) => {
        if (req.method === 'POST') {
          res.writeHead(201, { location: '/items/7', 'content-location': `http://${req.headers['x-forwarded-host'] as string}/lists/1?view=full` })
          res.end()
          return
        }
        if (req.method === 'PUT') {
          res.writeHead(200, { location: 'http://elsewhere.example/other', 'content-location': 'http://[bad' })
          res.end()
          return
        }
        res.writeHead(200, { 'cache-control': 'max-age=60' })
        res.end(req.url)
      })
      const gw = await startGateway(t, store, route(origin.url))
      const paths = ['/items/7', '/lists/1', '/items/8', '/other']
      for (const path of paths) await gw.get(path)
      t.same(await Promise.all(paths.map(async (path) => (await gw.get(path)).headers['x-cache'])), ['HIT', 'HIT', 'HIT', 'HIT'])
      t.equal((await call(`${gw.url}/items`, { method: 'POST', body: '{}' })).status, 201)
      t.equal((await call(`${gw.url}/items/8`, { method: 'PUT', body: '{}' })).status, 200)
      const after = await Promise.all(paths.map(async (path) => (await gw.get(path)).headers['x-cache']))
      t.same(after, ['MISS', 'MISS', 'MISS', 'HIT'], 'Location and Content-Location went, /items/8 by its own PUT; another origin\'s Location is ignored')
    })

    t.test('CDN-Cache-Control overrides Cache-Control and Expires, and is passed on unchanged', async (t) => {
      const origin = await startUpstream(t, (req, res) => {
        const headers: Record<string, string> = req.url === '/cdn'
          ? { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' }
          : req.url === '/cdn-no-store'
            ? { 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' }
            : req.url === '/cdn-invalid'
              ? { 'cache-control': 'max-age=60', 'cdn-cache-control': 'Max-Age=0' }
              : { expires: new Date(Date.now() + 60_000).toUTCString(), 'cdn-cache-control': 'max-age=1' }
        res.writeHead(200, headers)
        res.end(req.url)
      })
      const clock = FakeClock.wall()
      const gw = await startGateway(t, store, route(origin.url), clock.now)
      const twice = async (path: string): Promise<string[]> => [String((await gw.get(path)).headers['x-cache']), String((await gw.get(path)).headers['x-cache'])]
      t.same(await twice('/cdn'), ['MISS', 'HIT'], 'Cache-Control: no-store is overridden')
      t.equal((await gw.get('/cdn')).headers['cdn-cache-control'], 'max-age=60', 'passed on, so a CDN in front obeys it too')
      t.same(await twice('/cdn-no-store'), ['MISS', 'MISS'])
      t.same(await twice('/cdn-invalid'), ['MISS', 'HIT'], 'an invalid dictionary is ignored: Cache-Control decides')
      t.same(await twice('/cdn-expires'), ['MISS', 'HIT'])
      clock.advance(2_000)
      t.not((await gw.get('/cdn-expires')).headers['x-cache'], 'HIT', 'its max-age=1, not the Expires a minute ahead')
    })

    t.test('a route\'s own targeted field comes first, CDN-Cache-Control after it', async (t) => {
      const origin = await startUpstream(t, (req, res) => {
        res.writeHead(200, req.url === '/own'
          ? { 'cache-control': 'no-store', 'cdn-cache-control': 'no-store', 'breakwater-cache-control': 'max-age=60' }
          : { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' })
        res.end(req.url)
      })
      const gw = await startGateway(t, store, route(origin.url, '{targetedField: Breakwater-Cache-Control}'))
      const own = [await gw.get('/own'), await gw.get('/own')]
      t.same(own.map((a) => a.headers['x-cache']), ['MISS', 'HIT'])
      t.equal(own[1]?.headers['breakwater-cache-control'], 'max-age=60', 'passed on, as CDN-Cache-Control is')
      t.same([(await gw.get('/cdn')).headers['x-cache'], (await gw.get('/cdn')).headers['x-cache']], ['MISS', 'HIT'])
    })

    t.test('a chunked body of many writes is stored and replayed byte for byte', async (t) => {
      // 40 chunks of 7 KiB, each a different pattern: 280 KiB, more than one socket write either way.
      const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(7 * 1024, i * 7 + 1))
      const whole = Buffer.concat(chunks)
      const origin = await startUpstream(t, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=60', 'transfer-encoding': 'chunked' })
        let next = 0
        const write = (): void => {
          if (next === chunks.length) {
            res.end()
            return
          }
          res.write(chunks[next++])
          setImmediate(write)
        }
        write()
      })
      const gw = await startGateway(t, store, route(origin.url))
      const miss = await withDeadline(gw.get('/blob'), 'the MISS')
      t.equal(miss.headers['x-cache'], 'MISS')
      t.equal(miss.headers['transfer-encoding'], 'chunked', 'relayed as it came')
      t.ok(miss.body.equals(whole), 'the MISS is intact')
      await waitUntil(async () => (await gw.get('/blob')).headers['x-cache'] === 'HIT', 'the stored entry')
      const hit = await withDeadline(gw.get('/blob'), 'the HIT')
      t.equal(hit.headers['content-length'], String(whole.length))
      t.equal(hit.headers['transfer-encoding'], undefined)
      t.ok(hit.body.equals(whole), 'the HIT is byte-identical')
      t.equal(origin.received.length, 1)
    })

    t.test('a large chunked answer to a client slower than the route\'s timeout is relayed whole, then stored', async (t) => {
      // 320 chunks of 64 KiB, 20 MiB: more than the sockets on the way hold, so the gateway must wait for the client to drain.
      const chunks = Array.from({ length: 320 }, (_, i) => Buffer.alloc(64 * 1024, i))
      const whole = Buffer.concat(chunks)
      const origin = await startUpstream(t, (_req, res) => {
        res.writeHead(200, { 'cache-control': 'max-age=60', 'transfer-encoding': 'chunked' })
        let next = 0
        const write = (): void => {
          while (next < chunks.length) {
            if (!res.write(chunks[next++])) {
              res.once('drain', write)
              return
            }
          }
          res.end()
        }
        write()
      })
      const gw = await startGateway(t, store, route(origin.url, '{maxObjectSize: 32mb}').replace('    cache:', '    timeout: 400ms\n    cache:'))
      const res = await request(`${gw.url}/large`)
      // The client reads nothing for three times the route's timeout: the gateway waits on its socket, not the upstream.
      await delay(1_200)
      const body = Buffer.from(await res.body.arrayBuffer())
      t.ok(body.equals(whole), 'the slow client got every byte')
      const hit = await gw.get('/large')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.ok(hit.body.equals(whole), 'and the stored copy is the same')
    })
  })
}
