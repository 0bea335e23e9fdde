// `breakwater autoscale` as its own process: one leader and a standby, the lease released on SIGTERM, and a kill -9 in the middle of a slot repaired by the next leader.
import t from 'tap'
import type { Test } from 'tap'
import { autoscalerYaml, FORCE_SCALE_OUT, healthAt, NEVER_SCALE, sampleOf, scrapeAt, type HealthBody } from '../helpers/autoscaler.js'
import { runCli, startCli, writeConfig, type RunningGateway } from '../helpers/cli.js'
import { addressOf, clusterChecksClean, clusterClient, everyKeyIntact, openSlotsOf, slotCounts, writeKeys } from '../helpers/cluster-checks.js'
import { startClusterNode, startRedisCluster, type RedisServer } from '../helpers/redis.js'
import { waitUntil } from '../helpers/wait.js'

// Scale operations of thousands of slots, key by key, on two cores shared with the rest of the suite.
t.setTimeout(360_000)

async function health (running: RunningGateway): Promise<HealthBody> {
  return (await healthAt(running.url)).body
}

async function scrape (running: RunningGateway): Promise<string> {
  return await scrapeAt(running.url)
}

async function startAutoscale (t: Test, configFile: string, instance: string): Promise<RunningGateway> {
  return await startCli(t, configFile, { command: 'autoscale', env: { BREAKWATER_INSTANCE_ID: instance }, readyTimeoutMs: 30_000 })
}

t.test('autoscale needs redis.cluster, and says so', async (t) => {
  const file = await writeConfig(t, 'routes: []\n')
  const run = await runCli(['autoscale', '--config', file])
  t.equal(run.code, 1)
  t.match(run.stderr, /the autoscaler manages the Redis Cluster under redis\.cluster, and this config has none/)
})

t.test('one leader, one standby that says so; SIGTERM releases the lease and the standby takes over', async (t) => {
  const cluster = await startRedisCluster(t)
  const file = await writeConfig(t, autoscalerYaml({ cluster: cluster.nodes, mode: 'recommend', interval: '200ms', window: '400ms', ...NEVER_SCALE }))
  const a = await startAutoscale(t, file, 'a')
  await waitUntil(async () => (await health(a)).components.autoscaler.details.role === 'leader', 'a to lead', 10_000, 20)
  const b = await startAutoscale(t, file, 'b')
  await waitUntil(async () => (await health(b)).components.autoscaler.details.leader !== null, 'b to read who leads', 10_000, 20)
  const standby = await health(b)
  t.match(standby, { status: 'UP', components: { autoscaler: { details: { role: 'standby', leader: `a/${a.pid}` } } } }, 'b is UP, standing by, and names the leader')
  t.equal(sampleOf(await scrape(b), 'redis_autoscaler_leader'), 0)
  t.equal(sampleOf(await scrape(a), 'redis_autoscaler_leader'), 1)
  t.equal(sampleOf(await scrape(b), 'redis_cluster_masters'), 3, 'a standby measures too: its window is full when it takes over')

  a.child.kill('SIGTERM')
  t.same(await a.exit, { code: 0, signal: null }, 'a stops cleanly')
  const lease = await clusterClient(t, cluster.nodes)
  t.notMatch(String(await lease.client.get('bw:autoscaler:leader')), /^a\//, 'a deleted its lease on the way out, rather than leaving it to expire')
  await waitUntil(async () => (await health(b)).components.autoscaler.details.role === 'leader', 'b to take over', 10_000, 20)
  t.equal(sampleOf(await scrape(b), 'redis_autoscaler_leader'), 1)
  t.ok(a.logs.some((line) => /releasing the leader lease/.test(String(line.msg))), 'a said why it stopped')
})

t.test('kill -9 in the middle of a slot: the next leader repairs it, finishes the scale-out, and no key is lost', async (t) => {
  const KEYS = 60_000
  const cluster = await startRedisCluster(t)
  const spare = await startClusterNode(t)
  await writeKeys(t, cluster.nodes, KEYS)
  const nodes: RedisServer[] = [...cluster.servers, spare]
  // One key per MIGRATE: a slot stays open long enough to be caught open.
  const slow = await writeConfig(t, autoscalerYaml({ cluster: cluster.nodes, spares: [spare], mode: 'apply', backup: false, pipeline: 1, ...FORCE_SCALE_OUT }), 'slow.yaml')
  const first = await startAutoscale(t, slow, 'first')

  // Frozen with a slot open, then killed: as a crash between MIGRATING and SETSLOT NODE leaves it.
  let open = 0
  for (let attempt = 0; attempt < 2_000 && open === 0; attempt++) {
    const seen = await Promise.all(nodes.map(openSlotsOf))
    if (seen.every((count) => count === 0)) continue
    first.child.kill('SIGSTOP')
    open = (await Promise.all(nodes.map(openSlotsOf))).reduce((sum, count) => sum + count, 0)
    if (open === 0) first.child.kill('SIGCONT')
  }
  first.child.kill('SIGKILL')
  await first.exit
  t.ok(open > 0, `killed with ${open} slot end(s) open`)

  const fast = await writeConfig(t, autoscalerYaml({ cluster: cluster.nodes, spares: [spare], mode: 'apply', backup: false, ...FORCE_SCALE_OUT }), 'fast.yaml')
  const next = await startAutoscale(t, fast, 'next')
  await waitUntil(async () => sampleOf(await scrape(next), 'redis_autoscaler_last_action_timestamp_seconds') !== null, 'the scale-out to be finished', 180_000, 100)
  t.ok(next.logs.some((line) => /repairing them before any decision/.test(String(line.msg))), 'the open slot was repaired first')
  t.ok(next.logs.some((line) => /resuming the scale_out/.test(String(line.msg))), 'then the scale-out the first leader left was resumed')
  const counts = Object.values(await slotCounts(cluster.servers[0] as RedisServer)).filter((count) => count > 0)
  t.equal(counts.length, 4)
  for (const count of counts) t.ok(Math.abs(count - 4096) <= 4096 * 0.02, `${count} slots: within 2% of 4096`)
  await clusterChecksClean(t, addressOf(cluster.servers[0] as RedisServer))
  await everyKeyIntact(t, cluster.nodes, KEYS, 'after the kill and the repair')
})
