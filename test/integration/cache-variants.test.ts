// Several variants per URL end to end: a real origin that varies, a real gateway, on memory, Redis, Redis Cluster and Redis with an in-process tier.
import type { IncomingMessage, ServerResponse } from 'node:http'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startGateway } from '../helpers/gateway.js'
import { startRedis, startRedisCluster } from '../helpers/redis.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { parsePrometheus, valueOf } from '../helpers/prometheus.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

const TOKEN = 'variants-test-token'

interface Answer { status: number, cache: string | undefined, body: string }

const call = async (url: string, init: Parameters<typeof request>[1] = {}): Promise<Answer> => {
  const res = await request(url, init)
  const cache = res.headers['x-cache']
  return { status: res.statusCode, cache: typeof cache === 'string' ? cache : undefined, body: await res.body.text() }
}

/**
 * An origin that answers with the Vary a path asks for (`/star/...`: `*`, `/plain/...`: none, else Accept-Language),
 * its body naming the language it was asked for and a counter, so a test tells which answer a client got.
 */
async function varyingOrigin (t: Test): Promise<Upstream> {
  let served = 0
  return await startUpstream(t, (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? ''
    const vary = url.startsWith('/star/') ? { vary: '*' } : url.startsWith('/plain/') ? {} : { vary: 'Accept-Language' }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', ...vary })
    res.end(`${req.method ?? ''} ${url} ${req.headers['accept-language'] ?? '-'} #${++served}`)
  })
}

type Store = (t: Test) => Promise<string>

let prefixes = 0

const STORES: ReadonlyArray<readonly [string, Store]> = [
  ['memory', async () => ''],
  ['redis', async (t) => `redis:\n  url: ${(await startRedis(t)).url}\n`],
  ['cluster', async (t) => `redis:\n  cluster: [${(await startRedisCluster(t)).nodes.join(', ')}]\n`],
  ['redis with an in-process tier', async (t) => `redis:\n  url: ${(await startRedis(t)).url}\n`]
]

for (const [name, startStore] of STORES) {
  t.test(`on the ${name} store`, async (t) => {
    const store = await startStore(t)
    const tier = name.endsWith('tier') ? ['memory: {maxEntries: 100, ttl: 50ms}'] : []

    /** A gateway with one caching route `c` in front of `origin`, writing under its own key prefix. */
    const gateway = async (t: Test, origin: Upstream, ...cache: string[]): Promise<{ get: (path: string, language?: string) => Promise<Answer>, url: string }> => {
      const redis = store === '' ? '' : `${store}  keyPrefix: "v${++prefixes}:"\n  commandTimeout: 1s\n`
      const yaml = `management:\n  token: ${TOKEN}\n${redis}routes:\n  - id: c\n    prefix: /\n    upstream: ${origin.url}\n    cache: {${[...cache, ...tier].join(', ')}}\n`
      const { url } = await startGateway(t, yaml)
      return {
        url,
        get: async (path, language) => await call(url + path, { headers: language === undefined ? {} : { 'accept-language': language } })
      }
    }

    t.test('each language keeps its own variant: en MISS, de MISS, en HIT, de HIT', async (t) => {
      const origin = await varyingOrigin(t)
      const gw = await gateway(t, origin)
      const en = await gw.get('/x', 'en')
      const de = await gw.get('/x', 'de')
      t.same([en.cache, de.cache], ['MISS', 'MISS'])
      const enAgain = await gw.get('/x', 'en')
      const deAgain = await gw.get('/x', 'de')
      t.same([enAgain.cache, deAgain.cache], ['HIT', 'HIT'])
      t.equal(enAgain.body, en.body, 'the English answer for English')
      t.equal(deAgain.body, de.body, 'the German answer for German')
      t.same((await gw.get('/x')).cache, 'MISS', 'no Accept-Language is a variant of its own')
      t.same((await gw.get('/x')).cache, 'HIT')
      t.equal(origin.received.length, 3)
    })

    t.test('values are compared normalised: whitespace around list items and the case of language tags', async (t) => {
      const origin = await varyingOrigin(t)
      const gw = await gateway(t, origin)
      t.equal((await gw.get('/x', 'en, de;q=0.5')).cache, 'MISS')
      t.equal((await gw.get('/x', 'en,de;q=0.5')).cache, 'HIT')
      t.equal((await gw.get('/x', ' EN ,  De ; q=0.5,')).cache, 'HIT')
      t.equal((await gw.get('/x', 'de;q=0.5, en')).cache, 'MISS', 'the order of the items is kept')
      t.equal(origin.received.length, 2)
    })

    t.test('past maxVariants the oldest variant goes', async (t) => {
      const origin = await varyingOrigin(t)
      const gw = await gateway(t, origin, 'maxVariants: 2')
      for (const language of ['en', 'de', 'fr']) t.equal((await gw.get('/x', language)).cache, 'MISS', language)
      t.equal((await gw.get('/x', 'fr')).cache, 'HIT', 'the newest stays')
      t.equal((await gw.get('/x', 'de')).cache, 'HIT', 'the second newest stays')
      t.equal((await gw.get('/x', 'en')).cache, 'MISS', 'the oldest went')
      // A HIT once en is stored again (a request while it is being stored waits for it): de went before it was.
      t.equal((await gw.get('/x', 'en')).cache, 'HIT')
      t.equal((await gw.get('/x', 'de')).cache, 'MISS', 'storing en again dropped de, now the oldest')
    })

    t.test('a response with Vary: * is never answered from the cache', async (t) => {
      const origin = await varyingOrigin(t)
      const gw = await gateway(t, origin)
      t.same([(await gw.get('/star/x', 'en')).cache, (await gw.get('/star/x', 'en')).cache, (await gw.get('/star/x')).cache], ['MISS', 'MISS', 'MISS'])
      t.equal(origin.received.length, 3)
    })

    t.test('a purge removes every variant, of the route or under a path', async (t) => {
      const origin = await varyingOrigin(t)
      const gw = await gateway(t, origin)
      const purge = async (query: string): Promise<number> => {
        const res = await call(`${gw.url}/actuator/cache?${query}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
        t.equal(res.status, 200, res.body)
        return (JSON.parse(res.body) as { purged: number }).purged
      }
      const fill = async (): Promise<void> => {
        for (const path of ['/a/x', '/b/x']) for (const language of ['en', 'de']) await gw.get(path, language)
        await gw.get('/plain/x', 'en')
      }
      await fill()
      // Under /a: its index and two variants; /b and /plain stay.
      t.equal(await purge('route=c&prefix=/a'), 3)
      t.same([(await gw.get('/a/x', 'en')).cache, (await gw.get('/a/x', 'de')).cache], ['MISS', 'MISS'])
      t.same([(await gw.get('/b/x', 'en')).cache, (await gw.get('/b/x', 'de')).cache, (await gw.get('/plain/x')).cache], ['HIT', 'HIT', 'HIT'])
      await fill()
      t.ok(await purge('route=c') >= 7, 'two indexes, four variants and a plain entry')
      for (const path of ['/a/x', '/b/x']) {
        t.same([(await gw.get(path, 'en')).cache, (await gw.get(path, 'de')).cache], ['MISS', 'MISS'], path)
      }
    })

    t.test('a successful unsafe request invalidates every variant of its path (RFC 9111 section 4.4)', async (t) => {
      const origin = await varyingOrigin(t)
      const gw = await gateway(t, origin)
      for (const language of ['en', 'de', 'fr']) await gw.get('/items/1', language)
      t.equal((await gw.get('/items/1', 'de')).cache, 'HIT')
      t.equal((await call(`${gw.url}/items/1`, { method: 'POST', body: '{}' })).status, 200)
      for (const language of ['en', 'de', 'fr']) t.equal((await gw.get('/items/1', language)).cache, 'MISS', language)
      for (const language of ['en', 'de', 'fr']) t.equal((await gw.get('/items/1', language)).cache, 'HIT', `${language} stored again`)
    })

    t.test('a URL that stops varying is stored as one entry again, and its variants go', async (t) => {
      let vary = true
      const origin = await startUpstream(t, (req, res) => {
        res.writeHead(200, { 'cache-control': 'max-age=60', ...(vary ? { vary: 'accept-language' } : {}) })
        res.end(`${req.headers['accept-language'] ?? '-'}`)
      })
      const gw = await gateway(t, origin)
      await gw.get('/x', 'en')
      await gw.get('/x', 'de')
      vary = false
      t.equal((await gw.get('/x', 'fr')).cache, 'MISS')
      // The entry is stored after the MISS is answered; until then the old index still finds the en variant.
      await waitUntil(async () => (await gw.get('/x', 'en')).body === 'fr', 'the plain entry in place of the index')
      const any = await gw.get('/x', 'de')
      t.same([any.cache, any.body], ['HIT', 'fr'], 'the one entry answers every language')
    })
  })
}

t.test('two instances sharing Redis: one waiting on the other\'s fetch stops once that stored another variant', async (t) => {
  const redis = await startRedis(t)
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const origin = await startUpstream(t, (req, res) => {
    const answer = (): void => {
      res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-language' })
      res.end(req.headers['accept-language'])
    }
    if (req.headers['accept-language'] === 'en') held.then(answer, () => {})
    else answer()
  })
  // One prefix, as the replicas of one deployment; a lock as long as the route's timeout, far past the deadline below.
  const yaml = `redis:\n  url: ${redis.url}\n  keyPrefix: "shared:"\nroutes:\n  - id: c\n    prefix: /\n    upstream: ${origin.url}\n    timeout: 60s\n    cache: {}\n`
  const [a, b] = await Promise.all([startGateway(t, yaml), startGateway(t, yaml)])
  const host = { host: 'api.example.com' }
  const en = call(`${a?.url ?? ''}/x`, { headers: { ...host, 'accept-language': 'en' } })
  while (origin.received.length === 0) await new Promise((resolve) => setImmediate(resolve))
  // b finds the URL's lock taken by a's fetch of en (its SET NX counts as a set), and waits for it.
  const de = call(`${b?.url ?? ''}/x`, { headers: { ...host, 'accept-language': 'de' } })
  const sets = async (): Promise<number> => {
    const exposition = parsePrometheus((await call(`${b?.url ?? ''}/actuator/prometheus`)).body)
    try {
      return valueOf(exposition, 'cache_operation_latency_seconds_count', { operation: 'set', store: 'redis' })
    } catch {
      return 0 // no set observed yet
    }
  }
  await waitUntil(async () => await sets() >= 1, 'b to try the lock')
  release()
  t.same([(await en).body, (await en).cache], ['en', 'MISS'])
  const answer = await withDeadline(de, 'de to be fetched once en was stored, not after the 60 s lock', 20_000)
  t.same([answer.body, answer.cache], ['de', 'MISS'])
  t.equal((await call(`${a?.url ?? ''}/x`, { headers: { ...host, 'accept-language': 'de' } })).cache, 'HIT', 'and stored')
})
