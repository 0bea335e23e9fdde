// The autoscaler's admin actions on real redis-servers: scale out and in with every key intact, BUSYKEY, repair of half-done moves, backup.
import t from 'tap'
import { ClusterAdmin, ClusterAdminError, type AdminClient, type ClusterAdminOptions } from '../../src/autoscaler/cluster-admin.js'
import { parseClusterNodes, parseInfo, slotsOf, splitAddress } from '../../src/autoscaler/cluster-nodes.js'
import { CLUSTER_SLOTS } from '../../src/autoscaler/slot-plan.js'
import { connectNode } from '../../src/redis/index.js'
import { addressOf, clusterChecksClean, clusterClient, everyKeyIntact, slotCounts, writeKeys } from '../helpers/cluster-checks.js'
import { startClusterNode, startRedisCluster, type RedisServer } from '../helpers/redis.js'
import { waitUntil } from '../helpers/wait.js'

const KEYS = 20_000
/** Above MIGRATE's timeout, so the client never abandons a MIGRATE Redis still runs. */
const ADMIN_COMMAND_TIMEOUT_MS = 15_000

/** The factory the autoscaler is given: the production per-node connection of src/redis. */
const connect = async (address: string): Promise<AdminClient> => {
  const [host, port] = splitAddress(address)
  return await connectNode({ host, port, connectTimeoutMs: 2000, commandTimeoutMs: ADMIN_COMMAND_TIMEOUT_MS })
}

const address = addressOf

t.test('CLUSTER NODES, INFO and addresses are read as Redis prints them', async (t) => {
  const [master, replica, open] = parseClusterNodes([
    'e7d1eec 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 5462 [5461->-f00d] [99-<-beef]',
    'a1b2c3 127.0.0.1:30004@40004,host-4 slave e7d1eec 0 1700000000000 1 connected',
    'beef 127.0.0.1:30002@40002 master,fail? - 1 2 2 disconnected'
  ].join('\n') + '\n')
  t.same(master, {
    id: 'e7d1eec',
    address: '127.0.0.1:30001',
    flags: ['myself', 'master'],
    role: 'master',
    masterId: null,
    slots: [[0, 5460], [5462, 5462]],
    migrating: [{ slot: 5461, nodeId: 'f00d' }],
    importing: [{ slot: 99, nodeId: 'beef' }]
  })
  t.match(replica, { address: '127.0.0.1:30004', role: 'replica', masterId: 'e7d1eec', slots: [] })
  t.match(open, { flags: ['master', 'fail?'], role: 'master', slots: [] })
  t.throws(() => parseClusterNodes('abc 127.0.0.1:1@2 master -'), { message: /expected a CLUSTER NODES line of at least 8 fields, got "abc/ })
  t.throws(() => parseClusterNodes('abc 127.0.0.1:1@2 master - 0 0 1 connected 5-x'), { message: /got "5-x" in/ })
  t.same(slotsOf([[0, 2], [7, 7]]), [0, 1, 2, 7])
  t.same([...parseInfo('# Cluster\r\ncluster_state:ok\r\ncluster_known_nodes:3\r\n')], [['cluster_state', 'ok'], ['cluster_known_nodes', '3']])
  t.same(splitAddress('127.0.0.1:7000'), ['127.0.0.1', 7000])
  t.same(splitAddress('[::1]:7000'), ['::1', 7000])
  for (const bad of ['7000', ':7000', 'host:0', 'host:x', 'host:70000']) t.throws(() => splitAddress(bad), { name: 'TypeError', message: /expected a host:port address/ }, bad)
})

t.test('ClusterAdmin checks its options, naming them', async (t) => {
  const base: ClusterAdminOptions = { seeds: ['127.0.0.1:1'], connect }
  t.throws(() => new ClusterAdmin({ ...base, seeds: [] }), { name: 'TypeError', message: 'expected options.seeds to list at least one host:port, got []' })
  t.throws(() => new ClusterAdmin({ ...base, seeds: ['nohost'] }), { message: /expected a host:port address, got "nohost"/ })
  t.throws(() => new ClusterAdmin({ ...base, pipeline: 0 }), { message: 'expected options.pipeline to be a positive integer, got 0' })
  t.throws(() => new ClusterAdmin({ ...base, migrationTimeoutMs: 1.5 }), { message: 'expected options.migrationTimeoutMs to be a positive integer, got 1.5' })
  t.throws(() => new ClusterAdmin({ ...base, retireDelayMs: -1 }), { message: 'expected options.retireDelayMs to be an integer >= 0, got -1' })
  t.throws(() => new ClusterAdmin({ ...base, minMasters: 4, maxMasters: 3 }), { message: 'expected options.maxMasters to be at least options.minMasters (4), got 3' })
  const admin = new ClusterAdmin({ ...base, connect: async () => { throw new Error('refused') } })
  await t.rejects(admin.topology(), { name: 'ClusterAdminError', code: 'UNSETTLED', message: 'no seed answered CLUSTER NODES (127.0.0.1:1)', cause: { message: 'refused' } })
  await admin.close()
})

t.test('on a 3-master cluster with spares', async (t) => {
  const cluster = await startRedisCluster(t)
  const spare = await startClusterNode(t)
  const masters = cluster.servers.map(address)
  const moved: Array<{ slot: number, keys: number }> = []
  // A drained master is kept for 200 ms before its reset: the clients of these tests refresh as they go.
  const admin = new ClusterAdmin({ seeds: masters, connect, retireDelayMs: 200, onSlotMoved: ({ slot, keys }) => moved.push({ slot, keys }) })
  t.teardown(() => admin.close())

  await writeKeys(t, cluster.nodes, KEYS)
  const writer = await clusterClient(t, cluster.nodes)

  t.test('backup: a new snapshot on every master, LASTSAVE moves', async (t) => {
    const before = await Promise.all(cluster.servers.map(async (server) => Number(await server.cli('lastsave'))))
    // LASTSAVE counts seconds: a snapshot in the second the server started would not show.
    await waitUntil(() => Date.now() / 1000 >= Math.max(...before) + 1, 'the clock to pass the last LASTSAVE', 3000, 20)
    await admin.backup()
    const after = await Promise.all(cluster.servers.map(async (server) => Number(await server.cli('lastsave'))))
    t.ok(after.every((lastsave, i) => lastsave > (before[i] as number)), `LASTSAVE moved on every master: ${before.join(',')} -> ${after.join(',')}`)
    const infos = await Promise.all(cluster.servers.map(async (server) => parseInfo(await server.cli('info', 'persistence'))))
    t.ok(infos.every((info) => info.get('rdb_saves') === '1' && info.get('rdb_last_bgsave_status') === 'ok'), 'one snapshot each, status ok')
  })

  t.test('scale out: addMaster then rebalance to 4 even masters, every key intact', async (t) => {
    const capped = new ClusterAdmin({ seeds: masters, connect, maxMasters: 3 })
    await t.rejects(capped.addMaster(address(spare)), { code: 'REFUSED', message: /has 3 masters, maxMasters is 3/ })
    await capped.close()
    const id = await admin.addMaster(address(spare))
    t.equal(id, await spare.cli('cluster', 'myid'))
    t.equal(await admin.addMaster(address(spare)), id, 'run again (a scale-out cut short): already a master, nothing to do')
    t.same(await slotCounts(spare), { ...Object.fromEntries(masters.map((m) => [m, (CLUSTER_SLOTS / 3) | 0])), [address(spare)]: 0, [masters[1] as string]: 5462 })

    const rebalancing = admin.rebalance()
    await t.rejects(admin.repair(), { name: 'ClusterAdminError', code: 'BUSY', message: 'another admin operation is running: one at a time' })
    const summary = await rebalancing
    t.equal(summary.slotsMoved, CLUSTER_SLOTS / 4)
    t.equal(moved.length, CLUSTER_SLOTS / 4, 'onSlotMoved once per slot')
    t.equal(moved.reduce((sum, move) => sum + move.keys, 0), summary.keysMoved, 'onSlotMoved carries the keys')
    t.equal(Number(await spare.cli('dbsize')), summary.keysMoved, 'the new master holds exactly the keys moved')
    t.ok(summary.keysMoved > KEYS / 5, `about a quarter of the keys moved (${summary.keysMoved})`)
    for (const server of [...cluster.servers, spare]) {
      t.same(Object.values(await slotCounts(server)), [4096, 4096, 4096, 4096], `${address(server)} sees 4 masters of 4096 slots`)
    }
    t.same(await admin.rebalance(), { slotsMoved: 0, keysMoved: 0 }, 'even already: nothing moves')
    await everyKeyIntact(t, cluster.nodes, KEYS, 'after the scale-out')
    await clusterChecksClean(t, address(spare))
  })

  t.test('scale in: drainMaster back to 3, the spare reset, every key intact', async (t) => {
    moved.length = 0
    const draining = admin.drainMaster(address(spare))
    // Its last slot gone, it stays a master with none (no replica listed in any slot map) until it is reset.
    await waitUntil(async () => moved.length === 4096, 'the last slot to move', 60_000, 20)
    t.match(await spare.cli('cluster', 'nodes'), /myself,master/, 'drained, it is still a master, of no slot')
    const summary = await draining
    t.equal(await spare.cli('config', 'get', 'cluster-allow-replica-migration'), 'cluster-allow-replica-migration\nyes', 'replica migration is back on once it is reset')
    t.equal(summary.slotsMoved, 4096)
    t.equal(moved.length, 4096)
    t.equal(await spare.cli('cluster', 'nodes').then((nodes) => parseClusterNodes(nodes).length), 1, 'the spare knows only itself')
    t.equal(Number(await spare.cli('dbsize')), 0, 'the spare is empty')
    t.match(await spare.cli('cluster', 'info'), /cluster_slots_assigned:0/)
    for (const server of cluster.servers) {
      t.match(await server.cli('cluster', 'info'), /cluster_known_nodes:3/, `${address(server)} forgot it`)
      t.match(await server.cli('cluster', 'info'), /cluster_state:ok/)
    }
    const counts = Object.values(await slotCounts(cluster.servers[0] as RedisServer))
    t.ok(counts.every((count) => Math.abs(count - CLUSTER_SLOTS / 3) < 1), `even within 1 slot: ${counts.join(', ')}`)
    await t.rejects(admin.drainMaster(masters[0] as string), { code: 'REFUSED', message: /has 3 masters, minMasters is 3/ })
    await t.rejects(admin.drainMaster('127.0.0.1:1'), { code: 'REFUSED', message: 'no node of the cluster at 127.0.0.1:1' })
    await everyKeyIntact(t, cluster.nodes, KEYS, 'after the scale-in')
    await clusterChecksClean(t, masters[0] as string)
  })

  t.test('a spare used before is reset before it joins; a join or drain cut short is finished; one holding keys is refused', async (t) => {
    const [first, , third] = cluster.servers as [RedisServer, RedisServer, RedisServer]
    // Used before: it holds a slot of its own (as after an ADDSLOTS or a half-done setup).
    await spare.cli('cluster', 'addslots', '1')
    const hasty = new ClusterAdmin({ seeds: masters, connect, settleTimeoutMs: 1 })
    await t.rejects(hasty.addMaster(address(spare)), { code: 'UNSETTLED', message: new RegExp(`timed out after 1 ms waiting for every master to list ${address(spare)}`) })
    await hasty.close()
    // Named as an operator would (a DNS name in Kubernetes): resolved to the IP that CLUSTER MEET takes and the cluster announces.
    const id = await admin.addMaster(`localhost:${spare.port}`)
    t.equal(id, await spare.cli('cluster', 'myid'), 'the join cut short is finished')
    t.equal((await slotCounts(first))[address(spare)], 0, 'with no slot: the reset dropped it')
    t.same(await admin.drainMaster(address(spare)), { slotsMoved: 0, keysMoved: 0 }, 'a master with no slot drains at once')
    t.equal(parseClusterNodes(await spare.cli('cluster', 'nodes')).length, 1)

    // A drain cut short after the last slot: the node is a replica now. One master forgot it already (not the one
    // this admin asks for the topology).
    const again = await admin.addMaster(address(spare))
    const viaFirst = new ClusterAdmin({ seeds: [address(first)], connect, retireDelayMs: 200 })
    t.teardown(() => viaFirst.close())
    await spare.cli('cluster', 'replicate', await first.cli('cluster', 'myid'))
    await waitUntil(async () => (await viaFirst.topology()).nodes.some((node) => node.id === again && node.role === 'replica'), 'the spare to show as a replica', 10_000, 20)
    await third.cli('cluster', 'forget', again)
    await t.rejects(viaFirst.addMaster(address(spare)), { code: 'REFUSED', message: `spare ${address(spare)} is in the cluster as a replica` })
    t.same(await viaFirst.drainMaster(address(spare)), { slotsMoved: 0, keysMoved: 0 }, 'a replica is only forgotten and reset')
    t.equal(parseClusterNodes(await spare.cli('cluster', 'nodes')).length, 1, 'the spare knows only itself')
    for (const server of cluster.servers) t.notMatch(await server.cli('cluster', 'nodes'), again, `${address(server)} forgot it`)

    const full = await startClusterNode(t)
    await full.cli('config', 'set', 'cluster-require-full-coverage', 'no')
    await full.cli('cluster', 'addslots', await full.cli('cluster', 'keyslot', 'x'))
    await waitUntil(async () => (await full.cli('cluster', 'info')).includes('cluster_state:ok'), 'the lone node to serve its slot', 5000, 20)
    await full.cli('set', 'x', '1')
    await t.rejects(admin.addMaster(address(full)), { code: 'REFUSED', message: `spare ${address(full)} holds 1 keys: a spare must be empty` })
    t.equal(await full.cli('get', 'x'), '1', 'its key is left alone')
    t.notMatch(await first.cli('cluster', 'nodes'), address(full), 'it was not met')
  })

  t.test('BUSYKEY stops the move with the slot and key named, nothing overwritten; repair finishes it', async (t) => {
    const [source, target] = cluster.servers as [RedisServer, RedisServer]
    const slot = await ownedTag(source, 'busy')
    const keys = Array.from({ length: 10 }, (_, i) => `{${slot.tag}}:${i}`)
    for (const key of keys) await writer.client.set(key, `ours:${key}`)
    // The slot may hold keys of the 20k too.
    const inSlot = Number(await source.cli('cluster', 'countkeysinslot', String(slot.slot)))
    const busy = keys[5] as string
    const direct = await connect(address(target))
    t.teardown(() => direct.close())
    await direct.call('CLUSTER', 'SETSLOT', slot.slot, 'IMPORTING', await source.cli('cluster', 'myid'))
    await direct.call('ASKING')
    await direct.call('SET', busy, 'theirs')

    const error = await admin.moveSlot(address(source), address(target), slot.slot).catch((err: unknown) => err)
    t.type(error, ClusterAdminError)
    t.match(error, { code: 'BUSYKEY', slot: slot.slot, key: busy, message: new RegExp(`slot ${slot.slot} .*key "\\{${slot.tag}\\}:5" \\(BUSYKEY\\)`) })
    await direct.call('ASKING')
    t.equal(await direct.call('GET', busy), 'theirs', 'the target keeps its value: no REPLACE')
    t.equal(await source.cli('get', busy), `ours:${busy}`, 'the source keeps its own')
    t.equal(Number(await source.cli('cluster', 'countkeysinslot', String(slot.slot))), 1, 'the other keys moved')
    await t.rejects(admin.rebalance(), { code: 'UNSETTLED', message: `slots ${slot.slot} are open: repair() first` })

    // The operator settles the conflict; repair completes the move.
    await direct.call('ASKING')
    await direct.call('DEL', busy)
    t.same(await admin.repair(), { slotsMoved: 1, keysMoved: 1 })
    t.same(await Promise.all(keys.map(async (key) => writer.client.get(key))), keys.map((key) => `ours:${key}`), 'every key of the slot, with its value')
    t.equal(Number(await target.cli('cluster', 'countkeysinslot', String(slot.slot))), inSlot, 'every key of the slot moved')
    await clusterChecksClean(t, address(source))
  })

  t.test('repair finishes every kind of half-done move, forward, and refuses an ambiguous one', async (t) => {
    const [source, target, third] = cluster.servers as [RedisServer, RedisServer, RedisServer]
    const [sourceId, targetId] = [await source.cli('cluster', 'myid'), await target.cli('cluster', 'myid')]
    const mine: Record<string, { slot: number, keys: string[], all: string[] }> = {}
    for (const [name, count] of Object.entries({ half: 20, done: 5, importing: 7, migrating: 3 })) {
      const { slot, tag } = await ownedTag(source, name)
      const keys = Array.from({ length: count }, (_, i) => `{${tag}}:${i}`)
      for (const key of keys) await writer.client.set(key, `value:${key}`)
      // The slot may hold keys of the 20k too: every key of it moves.
      mine[name] = { slot, keys, all: (await source.cli('cluster', 'getkeysinslot', String(slot), '1000')).split('\n') }
    }
    /** Opens the slot of case `name` on the sides named and migrates `migrate` of its keys; resolves the keys repair must move. */
    const open = async (name: string, sides: { importing: boolean, migrating: boolean }, migrate: number): Promise<number> => {
      const { slot, all } = mine[name] as { slot: number, all: string[] }
      if (sides.importing) await target.cli('cluster', 'setslot', String(slot), 'importing', sourceId)
      if (sides.migrating) await source.cli('cluster', 'setslot', String(slot), 'migrating', targetId)
      if (migrate > 0) await source.cli('migrate', '127.0.0.1', String(target.port), '', '0', '5000', 'keys', ...all.slice(0, migrate))
      return all.length - migrate
    }
    // A crash in the middle of the keys, after the last key, after IMPORTING only, and with only MIGRATING left.
    const left = new Map([
      [mine.half?.slot, await open('half', { importing: true, migrating: true }, 10)],
      [mine.done?.slot, await open('done', { importing: true, migrating: true }, mine.done?.all.length as number)],
      [mine.importing?.slot, await open('importing', { importing: true, migrating: false }, 0)],
      [mine.migrating?.slot, await open('migrating', { importing: false, migrating: true }, 0)]
    ])
    t.equal(left.get(mine.done?.slot), 0)
    await t.rejects(admin.addMaster(address(spare)), { code: 'UNSETTLED', message: /are open: repair\(\) first/ })

    moved.length = 0
    t.same(await admin.repair(), { slotsMoved: 4, keysMoved: [...left.values()].reduce((sum, keys) => sum + keys, 0) })
    t.same(moved.sort((a, b) => a.slot - b.slot), [...left].map(([slot, keys]) => ({ slot, keys })).sort((a, b) => (a.slot as number) - (b.slot as number)), 'onSlotMoved per slot, with the keys repair moved')
    for (const { slot, keys, all } of Object.values(mine)) {
      t.equal(Number(await target.cli('cluster', 'countkeysinslot', String(slot))), all.length, `slot ${slot} moved with its ${all.length} keys`)
      t.same(await Promise.all(keys.map(async (key) => writer.client.get(key))), keys.map((key) => `value:${key}`))
    }
    await clusterChecksClean(t, address(third))
    t.same(await admin.repair(), { slotsMoved: 0, keysMoved: 0 }, 'nothing left to repair')

    // One slot importing on two nodes from the same source: which one was meant is not for a program to guess.
    const { slot } = await ownedTag(source, 'ambiguous')
    await target.cli('cluster', 'setslot', String(slot), 'importing', sourceId)
    await third.cli('cluster', 'setslot', String(slot), 'importing', sourceId)
    await t.rejects(admin.repair(), { code: 'INCONSISTENT', slot, message: new RegExp(`slot ${slot} is open between .* fix it by hand`) })
    await target.cli('cluster', 'setslot', String(slot), 'stable')
    await third.cli('cluster', 'setslot', String(slot), 'stable')
    await clusterChecksClean(t, address(source))
  })

  t.test('moveSlot moves one slot with its keys, and refuses a slot its source does not hold', async (t) => {
    const [source, target] = cluster.servers as [RedisServer, RedisServer]
    const { slot, tag } = await ownedTag(target, 'elsewhere')
    await writer.client.set(`{${tag}}:1`, 'one')
    const keys = Number(await target.cli('cluster', 'countkeysinslot', String(slot)))
    await t.rejects(admin.moveSlot(address(source), address(target), slot), { code: 'REFUSED', slot, message: `master ${address(source)} does not hold slot ${slot}` })
    // An admin with no onSlotMoved: moving needs none.
    const plain = new ClusterAdmin({ seeds: masters, connect })
    t.teardown(() => plain.close())
    t.same(await plain.moveSlot(address(target), address(source), slot), { slotsMoved: 1, keysMoved: keys })
    t.equal(Number(await source.cli('cluster', 'countkeysinslot', String(slot))), keys)
    t.equal(await writer.client.get(`{${tag}}:1`), 'one')
    await clusterChecksClean(t, address(target))
  })

  t.test('no slot moves while cluster_state is not ok', async (t) => {
    const [owner] = cluster.servers as [RedisServer]
    const { slot } = await ownedTag(owner, 'uncovered')
    // A slot no master serves: cluster_state:fail everywhere (cluster-require-full-coverage).
    for (const server of cluster.servers) await server.cli('cluster', 'delslots', String(slot))
    await waitUntil(async () => (await owner.cli('cluster', 'info')).includes('cluster_state:fail'), 'cluster_state:fail', 10_000, 20)
    await t.rejects(admin.rebalance(), { code: 'UNSETTLED', message: 'cluster_state is fail, not ok: not moving any slot' })
    await owner.cli('cluster', 'addslots', String(slot))
    await waitUntil(async () => (await Promise.all(cluster.servers.map(async (server) => server.cli('cluster', 'info')))).every((info) => info.includes('cluster_state:ok')),
      'cluster_state:ok again', 10_000, 20)
    await clusterChecksClean(t, address(owner))
  })
})

/** A hash tag whose slot `server` holds, starting the search from `prefix`. */
async function ownedTag (server: RedisServer, prefix: string): Promise<{ tag: string, slot: number }> {
  const own = new Set(slotsOf(parseClusterNodes(await server.cli('cluster', 'nodes')).find((node) => node.flags.includes('myself'))?.slots ?? []))
  for (let i = 0; i < 1000; i++) {
    const tag = `${prefix}${i}`
    const slot = Number(await server.cli('cluster', 'keyslot', tag))
    if (own.has(slot)) return { tag, slot }
  }
  throw new Error(`no tag ${prefix}<n> hashes to a slot of ${server.port}`)
}
