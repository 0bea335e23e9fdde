// The autoscaler's control loop on real redis-servers: recommend mode changes nothing; apply mode backs up, scales out, cools down and scales in.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import {
  autoscalerYaml, FORCE_SCALE_IN, FORCE_SCALE_OUT, NEVER_SCALE, sampleOf, seriesCount, startAutoscaler
} from '../helpers/autoscaler.js'
import { addressOf, clusterChecksClean, clusterClient, everyKeyIntact, openSlotsOf, slotCounts, writeKeys } from '../helpers/cluster-checks.js'
import { freePort } from '../helpers/ports.js'
import { startClusterNode, startRedisCluster, type RedisServer } from '../helpers/redis.js'
import { waitUntil } from '../helpers/wait.js'

// Scale operations of thousands of slots, key by key, on two cores shared with the rest of the suite.
t.setTimeout(480_000)

const execFileAsync = promisify(execFile)

/** The keys in the snapshot `server` last saved (its dump.rdb), as redis-check-rdb counts them. */
async function keysInSnapshot (server: RedisServer): Promise<number> {
  const dir = (await server.cli('config', 'get', 'dir')).split('\n')[1] as string
  const { stdout } = await execFileAsync('redis-check-rdb', [join(dir, 'dump.rdb')], { timeout: 20_000 })
  const read = /(\d+) keys read/.exec(stdout)
  if (read === null) throw new Error(`redis-check-rdb printed no key count: ${stdout}`)
  return Number(read[1])
}

/** Slot counts of the masters that hold slots. */
async function servingMasters (server: RedisServer): Promise<number[]> {
  return Object.values(await slotCounts(server)).filter((count) => count > 0)
}

t.test('recommend mode measures, decides and logs, and changes nothing', async (t) => {
  const cluster = await startRedisCluster(t)
  const spare = await startClusterNode(t)
  await writeKeys(t, cluster.nodes, 500)
  const before = await slotCounts(cluster.servers[0] as RedisServer)
  const running = await startAutoscaler(t, autoscalerYaml({ cluster: cluster.nodes, spares: [spare], mode: 'recommend', ...FORCE_SCALE_OUT }), 'recommender')

  let text = ''
  await waitUntil(async () => {
    text = await running.scrape()
    return (sampleOf(text, 'redis_autoscaler_decisions_total{action="scale_out",applied="false"}') ?? 0) >= 2
  }, 'two scale_out recommendations', 15_000, 50)
  t.equal(sampleOf(text, 'redis_autoscaler_decisions_total{action="scale_out",applied="true"}'), 0, 'none applied')
  t.equal(sampleOf(text, 'redis_cluster_masters'), 3)
  t.equal(sampleOf(text, 'redis_autoscaler_leader'), 1, 'the only instance leads')
  t.equal(seriesCount(text, 'redis_node_memory_percent'), 3, 'memory of each master')
  t.equal(seriesCount(text, 'redis_node_cpu_percent'), 3, 'CPU of each master, from its second sample')
  t.equal(sampleOf(text, 'redis_autoscaler_slots_moved_total'), 0)
  t.equal(sampleOf(text, 'redis_autoscaler_last_action_timestamp_seconds'), null, 'no action, no timestamp')

  const health = await running.health()
  t.equal(health.status, 200)
  t.equal(health.body.status, 'UP')
  t.match(health.body.components.autoscaler.details, { mode: 'recommend', role: 'leader', leader: 'recommender', lastDecision: { action: 'scale_out' } })
  t.match(health.body.components.redisCluster, { status: 'UP', details: { state: 'ok', masters: 3, openSlots: 0 } })
  const liveness = await fetch(`${running.url}/actuator/health/liveness`)
  t.equal(liveness.status, 200)
  const unknown = await fetch(`${running.url}/actuator/health/nothing`)
  t.equal(unknown.status, 404)
  t.match(unknown.headers.get('content-type'), /^application\/problem\+json\b/)
  const elsewhere = await fetch(`${running.url}/somewhere`)
  t.equal(elsewhere.status, 404)
  t.match(await elsewhere.json(), { status: 404, code: 'BW_ERR_ACTUATOR_NOT_FOUND' })

  t.same(await slotCounts(cluster.servers[0] as RedisServer), before, 'the same slots on the same masters')
  t.equal((await spare.cli('cluster', 'nodes')).trim().split('\n').length, 1, 'the spare still knows only itself')
  t.equal(await spare.cli('dbsize'), '0')
  await everyKeyIntact(t, cluster.nodes, 500, 'after recommending')
})

t.test('apply mode: backup first, scale out to an even 4, cool down, then scale the added master back in', async (t) => {
  const KEYS = 5_000
  const cluster = await startRedisCluster(t)
  const spare = await startClusterNode(t)
  await writeKeys(t, cluster.nodes, KEYS)
  const seed = cluster.servers[0] as RedisServer
  const keysBefore = await Promise.all(cluster.servers.map(async (server) => Number(await server.cli('dbsize'))))

  const out = await startAutoscaler(t, autoscalerYaml({ cluster: cluster.nodes, spares: [spare], mode: 'apply', cooldown: '1h', ...FORCE_SCALE_OUT }), 'out')
  let text = ''
  await waitUntil(async () => {
    text = await out.scrape()
    return sampleOf(text, 'redis_autoscaler_last_action_timestamp_seconds') !== null
  }, 'the scale-out to end', 180_000, 50)
  const counts = await servingMasters(seed)
  t.equal(counts.length, 4, 'four masters serve slots')
  for (const count of counts) t.ok(Math.abs(count - 4096) <= 4096 * 0.02, `${count} slots: within 2% of 4096`)
  t.equal(sampleOf(text, 'redis_autoscaler_decisions_total{action="scale_out",applied="true"}'), 1)
  t.equal(sampleOf(text, 'redis_autoscaler_operation_seconds_count{action="scale_out"}'), 1)
  const added = (await slotCounts(seed))[addressOf(spare)] as number
  t.equal(sampleOf(text, 'redis_autoscaler_slots_moved_total'), added, 'every slot the spare took was counted')
  t.equal(sampleOf(text, 'redis_autoscaler_keys_moved_total'), Number(await spare.cli('dbsize')), 'and every key it holds')

  // "Back up before changing Redis": each original master's snapshot holds every key it had before the first slot moved.
  // The lease and the journal are keys of the cluster too: a master may hold one or both of them besides.
  for (const [i, server] of cluster.servers.entries()) {
    const saved = await keysInSnapshot(server)
    const before = keysBefore[i] as number
    t.ok(saved >= before && saved <= before + 2, `${addressOf(server)}: its backup holds ${saved} keys, its ${before} of before the move and the autoscaler's own`)
  }

  await waitUntil(async () => /^cooldown/.test((await out.health()).body.components.autoscaler.details.lastDecision?.reason ?? ''),
    'a decision that holds for the cooldown', 15_000, 50)
  t.equal((await servingMasters(seed)).length, 4, 'no second action in the cooldown')
  await clusterChecksClean(t, addressOf(seed))
  await everyKeyIntact(t, cluster.nodes, KEYS, 'after the scale-out')
  await out.autoscaler.close()

  // The journal carries the last action's time to the next leader: a short cooldown has passed by now.
  const into = await startAutoscaler(t, autoscalerYaml({ cluster: cluster.nodes, spares: [spare], mode: 'apply', ...FORCE_SCALE_IN }), 'in')
  await waitUntil(async () => sampleOf(await into.scrape(), 'redis_autoscaler_last_action_timestamp_seconds') !== null, 'the scale-in to end', 180_000, 50)
  const after = await slotCounts(seed)
  t.equal(Object.values(after).filter((count) => count > 0).length, 3, 'three masters again')
  t.equal(after[addressOf(spare)], undefined, 'the drained master is the one that was a spare, and the cluster forgot it')
  t.equal((await spare.cli('cluster', 'nodes')).trim().split('\n').length, 1, 'reset: it knows only itself, a spare again')
  t.equal(await spare.cli('dbsize'), '0')
  await clusterChecksClean(t, addressOf(seed))
  await everyKeyIntact(t, cluster.nodes, KEYS, 'after the scale-in')
})

t.test('a cluster it cannot reach: health DOWN with the reason, liveness UP, nothing decided', async (t) => {
  const nowhere = await freePort()
  const running = await startAutoscaler(t, autoscalerYaml({ cluster: [`redis://127.0.0.1:${nowhere}`], mode: 'recommend', ...NEVER_SCALE }), 'lost')
  let health = await running.health()
  await waitUntil(async () => {
    health = await running.health()
    return health.body.components.redisCluster.details.error !== 'not measured yet'
  }, 'a failed measurement', 15_000, 50)
  t.equal(health.status, 503)
  t.match(health.body, { status: 'DOWN', components: { redisCluster: { status: 'DOWN', details: { error: /CLUSTER NODES/ } }, autoscaler: { details: { role: 'standby', lastDecision: null } } } })
  t.equal((await fetch(`${running.url}/actuator/health/liveness`)).status, 200, 'a restart would not bring Redis back')
  t.equal((await fetch(`${running.url}/actuator/health/readiness`)).status, 503)
  const text = await running.scrape()
  t.equal(sampleOf(text, 'redis_cluster_masters'), null, 'no figure rather than a made-up one')
  t.equal(sampleOf(text, 'redis_autoscaler_decisions_total{action="hold",applied="false"}'), 0)
})

t.test('stopped in the middle of a scale-out: it ends after the current slot, the cluster whole; the next leader finishes it from the journal', async (t) => {
  const KEYS = 30_000
  const cluster = await startRedisCluster(t)
  const spare = await startClusterNode(t)
  await writeKeys(t, cluster.nodes, KEYS)
  const seed = cluster.servers[0] as RedisServer
  const journal = await clusterClient(t, cluster.nodes)
  const first = await startAutoscaler(t, autoscalerYaml({ cluster: cluster.nodes, spares: [spare], mode: 'apply', backup: false, pipeline: 1, ...FORCE_SCALE_OUT }), 'first')
  await waitUntil(async () => (sampleOf(await first.scrape(), 'redis_autoscaler_slots_moved_total') ?? 0) >= 10, 'ten slots moved', 180_000, 20)
  await first.autoscaler.close()
  t.equal((await Promise.all([...cluster.servers, spare].map(openSlotsOf))).reduce((sum, count) => sum + count, 0), 0, 'no slot left open')
  const moved = (await slotCounts(seed))[addressOf(spare)] as number
  t.ok(moved > 0 && moved < 4000, `stopped part way: the spare holds ${moved} slots`)
  t.match(JSON.parse(String(await journal.client.hget('bw:autoscaler:journal', 'operation'))), { action: 'scale_out', node: addressOf(spare) }, 'the operation is still in the journal')
  t.equal(await journal.client.get('bw:autoscaler:leader'), null, 'the lease was released')
  await everyKeyIntact(t, cluster.nodes, KEYS, 'after the stop')

  const next = await startAutoscaler(t, autoscalerYaml({ cluster: cluster.nodes, spares: [spare], mode: 'apply', backup: false, ...NEVER_SCALE }), 'next')
  await waitUntil(async () => sampleOf(await next.scrape(), 'redis_autoscaler_last_action_timestamp_seconds') !== null, 'the resumed scale-out to end', 180_000, 50)
  const counts = Object.values(await slotCounts(seed)).filter((count) => count > 0)
  t.equal(counts.length, 4, 'finished, though no threshold asks for it: the journal did')
  for (const count of counts) t.ok(Math.abs(count - 4096) <= 4096 * 0.02, `${count} slots: within 2% of 4096`)
  t.equal(await journal.client.hget('bw:autoscaler:journal', 'operation'), null, 'and cleared from the journal')
  await everyKeyIntact(t, cluster.nodes, KEYS, 'after the resumed scale-out')
})

t.test('an operation the journal holds that cannot go on is given up, and one it cannot read is ignored', async (t) => {
  const cluster = await startRedisCluster(t)
  const journal = await clusterClient(t, cluster.nodes)
  const before = await slotCounts(cluster.servers[0] as RedisServer)
  await journal.client.hset('bw:autoscaler:journal', 'operation', JSON.stringify({ action: 'scale_in', node: '127.0.0.1:1', startedAtMs: 1 }))
  const running = await startAutoscaler(t, autoscalerYaml({ cluster: cluster.nodes, mode: 'apply', ...NEVER_SCALE }), 'refused')
  await waitUntil(async () => await journal.client.hget('bw:autoscaler:journal', 'operation') === null, 'the refused operation to be given up', 15_000, 50)
  t.ok(Number(await journal.client.hget('bw:autoscaler:journal', 'lastActionAtMs')) > 0, 'its end starts the cooldown')

  await journal.client.hset('bw:autoscaler:journal', 'operation', '{not json')
  const decided = sampleOf(await running.scrape(), 'redis_autoscaler_decisions_total{action="hold",applied="false"}') ?? 0
  await waitUntil(async () => (sampleOf(await running.scrape(), 'redis_autoscaler_decisions_total{action="hold",applied="false"}') ?? 0) >= decided + 2,
    'decisions to go on past an unreadable journal entry', 15_000, 50)
  t.same(await slotCounts(cluster.servers[0] as RedisServer), before, 'nothing moved')
})
