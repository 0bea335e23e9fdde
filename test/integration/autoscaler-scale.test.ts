// The scenario: 100k keys on 3 masters and 2 spares; scale out to 4 and back to 3 while a gateway serves cached traffic from the cluster and a client writes.
import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { autoscalerYaml, FORCE_SCALE_IN, FORCE_SCALE_OUT, sampleOf, scrapeAt } from '../helpers/autoscaler.js'
import { startCli, writeConfig } from '../helpers/cli.js'
import { addressOf, clusterChecksClean, clusterClient, everyKeyIntact, slotCounts, writeKeys } from '../helpers/cluster-checks.js'
import { startGateway } from '../helpers/gateway.js'
import { startClusterNode, startRedisCluster, type RedisServer } from '../helpers/redis.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitUntil } from '../helpers/wait.js'

const KEYS = 100_000
const PAGES = 200
/** The load stops at the latest this long after it began, whatever happens. */
const LOAD_CAP_MS = 480_000
/** Between two operations of one load worker. */
const PACE_MS = 2

// Two scale operations of 100k keys, under load, on two cores.
t.setTimeout(600_000)

t.test('scale out to 4 and back to 3 under load: even slots, every key intact, zero request and client errors', async (t) => {
  const cluster = await startRedisCluster(t)
  const spares = [await startClusterNode(t), await startClusterNode(t)]
  const seed = cluster.servers[0] as RedisServer
  await writeKeys(t, cluster.nodes, KEYS)

  const origin = await startUpstream(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=3600' })
    res.end(`page ${req.url ?? ''}`)
  })
  const gateway = await startGateway(t, `redis:\n  cluster: [${cluster.nodes.join(', ')}]\nroutes:\n  - id: pages\n    prefix: /\n    upstream: ${origin.url}\n    cache: {}\n`)
  for (let page = 0; page < PAGES; page++) await (await fetch(`${gateway.url}/p/${page}`)).text()
  t.equal(origin.received.length, PAGES, 'every page fetched once, then cached')

  // The load: cached GETs through the gateway, and SETs through a Cluster client of the gateway's kind (no retry, no
  // queue), each worker paced at a few hundred a second: steady traffic on every slot, not a CPU hog that would slow
  // the tests running beside this one.
  const writer = await clusterClient(t, cluster.nodes)
  const load = { stop: false, gets: 0, hits: 0, writes: 0, errors: [] as string[] }
  const capped = Date.now() + LOAD_CAP_MS
  const running = (): boolean => !load.stop && Date.now() < capped
  t.teardown(() => { load.stop = true })
  const readers = Array.from({ length: 2 }, async (_, worker) => {
    for (let i = worker; running(); i += 2) {
      try {
        const response = await fetch(`${gateway.url}/p/${i % PAGES}`)
        const body = await response.text()
        if (response.status !== 200 || body !== `page /p/${i % PAGES}`) load.errors.push(`GET /p/${i % PAGES}: ${response.status} ${body}`)
        if (response.headers.get('x-cache') === 'HIT') load.hits++
        load.gets++
      } catch (err) {
        load.errors.push(`GET: ${(err as Error).message}`)
      }
      await delay(PACE_MS)
    }
  })
  const writers = Array.from({ length: 1 }, async (_, worker) => {
    for (let i = worker; running(); i += 1) {
      try {
        await writer.client.set(`w:${i}`, `v:${i}`)
        load.writes = Math.max(load.writes, i + 1)
      } catch (err) {
        load.errors.push(`SET w:${i}: ${(err as Error).message}`)
      }
      await delay(PACE_MS)
    }
  })

  const began = Date.now()
  // Its own process, as it runs in production: the load above keeps this one's event loop busy.
  const out = await startCli(t, await writeConfig(t, autoscalerYaml({ cluster: cluster.nodes, spares, mode: 'apply', cooldown: '1h', ...FORCE_SCALE_OUT }), 'out.yaml'), { command: 'autoscale', readyTimeoutMs: 30_000 })
  await waitUntil(async () => sampleOf(await scrapeAt(out.url), 'redis_autoscaler_last_action_timestamp_seconds') !== null, 'the scale-out under load', 240_000, 100)
  out.child.kill('SIGTERM')
  await out.exit
  t.comment(`scaled out in ${((Date.now() - began) / 1000).toFixed(1)} s, ${load.gets} GETs, ${load.writes} SETs, ${load.errors.length} errors so far`)
  const afterOut = Object.values(await slotCounts(seed)).filter((count) => count > 0)
  t.equal(afterOut.length, 4, 'four masters')
  for (const count of afterOut) t.ok(Math.abs(count - 4096) <= 4096 * 0.02, `${count} slots: within 2% of 4096`)
  const getsDuringOut = load.gets

  const into = await startCli(t, await writeConfig(t, autoscalerYaml({ cluster: cluster.nodes, spares, mode: 'apply', ...FORCE_SCALE_IN }), 'in.yaml'), { command: 'autoscale', readyTimeoutMs: 30_000 })
  await waitUntil(async () => sampleOf(await scrapeAt(into.url), 'redis_autoscaler_last_action_timestamp_seconds') !== null, 'the scale-in under load', 240_000, 100)
  into.child.kill('SIGTERM')
  await into.exit
  t.comment(`scaled in after ${((Date.now() - began) / 1000).toFixed(1)} s`)
  load.stop = true
  await Promise.all([...readers, ...writers])

  t.same(load.errors.slice(0, 5), [], `zero errors in ${load.gets} cached GETs and ${load.writes} SETs`)
  t.ok(getsDuringOut > 0 && load.gets > getsDuringOut && load.writes > 0, 'the load ran through both moves')
  // A lookup the cache's Redis does not answer within its commandTimeout (100 ms) bypasses the cache, by design: on
  // two cores shared by six redis-servers, the gateway, the load and the autoscaler, a rare one does. Redirections
  // (MOVED, ASK) are followed by the client and cost no bypass.
  t.ok(load.hits >= load.gets * 0.99, `${load.hits} of ${load.gets} GETs were cache HITs (99% at least)`)
  t.ok(origin.received.length - PAGES <= load.gets - load.hits, 'a GET reached the origin only when it bypassed the cache')

  t.equal(Object.values(await slotCounts(seed)).filter((count) => count > 0).length, 3, 'three masters again')
  await clusterChecksClean(t, addressOf(seed))
  await everyKeyIntact(t, cluster.nodes, KEYS, 'after scaling out and in')
  const written = await Promise.all(Array.from({ length: load.writes }, async (_, i) => await writer.client.get(`w:${i}`)))
  t.equal(written.filter((value, i) => value !== `v:${i}`).length, 0, `all ${load.writes} keys written during the moves read back`)
})
