// The autoscaler's leader lease on real redis-servers, standalone and Cluster: one leader, renewal, release, expiry, takeover, Redis down.
import { performance } from 'node:perf_hooks'
import t from 'tap'
import type { Test } from 'tap'
import { parseClusterNodes, slotsOf } from '../../src/autoscaler/cluster-nodes.js'
import { Lease, type LeaseClient } from '../../src/autoscaler/lease.js'
import { createRedisClient, readyWithin, type RedisClientOptions } from '../../src/redis/index.js'
import { startRedis, startRedisCluster, type RedisServer } from '../helpers/redis.js'
import { waitUntil } from '../helpers/wait.js'

/** Short, so that expiry is seen within the test; the renewals below come every TTL_MS / 4. */
const TTL_MS = 300
const PREFIX = 'bw:'

interface Backend {
  /** One connection per autoscaler instance, as two processes would each have. */
  readonly a: LeaseClient
  readonly b: LeaseClient
  /** The redis-server that holds `key`: the one to kill. */
  serverOf: (key: string) => Promise<RedisServer>
}

/** A ready connection from src/redis, closed in `t.teardown`. */
async function connect (t: Test, target: Pick<RedisClientOptions, 'url' | 'cluster'>): Promise<LeaseClient> {
  // A short command timeout: a renewal to a dead Cluster node is rejected within it.
  const connection = createRedisClient({ ...target, keyPrefix: PREFIX, connectTimeoutMs: 1000, commandTimeoutMs: 1000 })
  t.teardown(connection.close)
  await readyWithin(connection, 5000)
  if (connection.client.status !== 'ready') throw new Error(`the ${connection.kind} connection is not ready after 5 s`)
  return connection.client
}

let keys = 0
/** A fresh key per case, so that no case sees another's lease; a hash tag, so that `${key}:...` lands in its slot. */
const freshKey = (): string => `${PREFIX}{autoscaler:leader:${++keys}}`

/** Two candidates for `key`, `a` and `b`, on their own connections. */
function pair (backend: Backend, key: string, ttlMs = TTL_MS): { a: Lease, b: Lease } {
  return {
    a: new Lease({ client: backend.a, key, holder: 'a', ttlMs }),
    b: new Lease({ client: backend.b, key, holder: 'b', ttlMs })
  }
}

/** The same cases against each kind of Redis the gateway runs on. */
function leaseCases (t: Test, setup: (t: Test) => Promise<Backend>): void {
  let backend: Backend
  t.before(async () => { backend = await setup(t) })

  t.test('one of two acquires, the other stands by and sees who leads', async (t) => {
    const { a, b } = pair(backend, freshKey())
    t.equal(await a.holderOf(), null, 'nobody leads before the first attempt')
    t.equal(await a.tryAcquire(), true, 'a acquires')
    t.equal(await b.tryAcquire(), false, 'b stands by')
    t.equal(a.isLeader, true)
    t.equal(b.isLeader, false)
    t.equal(await b.holderOf(), 'a', 'the standby names the leader')
    t.equal(await b.renew(), false, 'a standby has nothing to renew')
    t.equal(b.isLeader, false)
  })

  t.test('tryAcquire by the holder renews the lease', async (t) => {
    const key = freshKey()
    const { a } = pair(backend, key)
    t.equal(await a.tryAcquire(), true)
    const pttl = async (): Promise<number> => Number(await backend.b.call('PTTL', key))
    await waitUntil(async () => await pttl() < TTL_MS / 2, 'the lease to run half down', 2000)
    t.equal(await a.tryAcquire(), true, 'acquiring a lease we hold succeeds')
    t.ok(await pttl() > TTL_MS / 2, 'and resets its ttl')
    t.equal(await a.holderOf(), 'a')
  })

  t.test('renewing keeps the lease well past its ttl', async (t) => {
    const { a, b } = pair(backend, freshKey())
    const started = performance.now()
    t.equal(await a.tryAcquire(), true)
    let renewals = 0
    let lost = 0
    let standbyWon = 0
    await waitUntil(async () => {
      if (await a.renew()) renewals++
      else lost++
      if (await b.tryAcquire()) standbyWon++
      return performance.now() - started > 3 * TTL_MS
    }, 'three ttls of renewals', 5000, TTL_MS / 4)
    t.ok(renewals >= 4, `renewed ${renewals} times`)
    t.equal(lost, 0, 'no renewal failed')
    t.equal(standbyWon, 0, 'the standby never acquired')
    t.equal(a.isLeader, true)
    t.equal(await b.holderOf(), 'a')
  })

  t.test('release lets the standby acquire at once; only the holder can release', async (t) => {
    const { a, b } = pair(backend, freshKey())
    t.equal(await a.tryAcquire(), true)
    await b.release()
    t.equal(await a.holderOf(), 'a', "a standby's release leaves the leader's key alone")
    t.equal(a.isLeader, true)
    await a.release()
    t.equal(a.isLeader, false, 'the leader stops leading when it releases')
    t.equal(await a.holderOf(), null, 'the key is gone')
    t.equal(await b.tryAcquire(), true, 'the standby acquires on its first attempt, without waiting out the ttl')
    t.equal(await a.tryAcquire(), false, 'and the old leader now stands by')
  })

  t.test('a release while a renewal or an acquire is in flight wins', async (t) => {
    const { a } = pair(backend, freshKey())
    t.equal(await a.tryAcquire(), true)
    const renewing = a.renew()
    await a.release()
    t.equal(await renewing, false, 'the renewal answered after the release does not count')
    t.equal(a.isLeader, false)
    const acquiring = a.tryAcquire()
    await a.release()
    t.equal(await acquiring, false, 'nor does an acquire')
    t.equal(a.isLeader, false)
    t.equal(await a.holderOf(), null)
  })

  t.test('a leader that stops renewing loses the lease after the ttl, and never overlaps the standby', async (t) => {
    const { a, b } = pair(backend, freshKey())
    const started = performance.now()
    t.equal(await a.tryAcquire(), true)
    let overlap = false
    await waitUntil(async () => {
      const acquired = await b.tryAcquire()
      if (acquired && a.isLeader) overlap = true
      return acquired
    }, 'the standby to acquire an expired lease', 3000, 20)
    t.ok(performance.now() - started >= TTL_MS, 'not before the ttl')
    t.equal(overlap, false, 'the old leader had stopped leading by then')
    t.equal(a.isLeader, false)
    t.equal(await a.renew(), false, 'its late renewal finds the lease lost')
    t.equal(await a.holderOf(), 'b')
  })

  t.test('a leader whose key was taken over finds renew false and steps down', async (t) => {
    const key = freshKey()
    const { a, b } = pair(backend, key)
    t.equal(await a.tryAcquire(), true)
    // Another instance took the key between two renewals (as after a long pause of ours).
    await backend.b.call('DEL', key)
    await backend.b.call('SET', key, 'b', 'PX', TTL_MS)
    t.equal(await a.renew(), false)
    t.equal(a.isLeader, false)
    await a.release()
    t.equal(await a.holderOf(), 'b', "the old leader's release leaves the new leader's key alone")
    t.equal(await a.tryAcquire(), false)
    t.equal(await b.tryAcquire(), true, 'the new holder renews what it holds')
  })

  t.test('leadership runs out on the injected clock, without asking Redis', async (t) => {
    let clock = 1_000
    // A long ttl, so that the key outlives this case in Redis: only our own view expires.
    const lease = new Lease({ client: backend.a, key: freshKey(), holder: 'a', ttlMs: 10_000, now: () => clock })
    t.equal(await lease.tryAcquire(), true)
    clock += 9_999
    t.equal(lease.isLeader, true, 'still leading 1 ms before the ttl')
    clock += 1
    t.equal(lease.isLeader, false, 'no longer once the ttl has passed since the last success')
    t.equal(await lease.renew(), true, 'the key was still ours: a renewal makes us lead again')
    t.equal(lease.isLeader, true)
    clock += 9_999
    t.equal(lease.isLeader, true, 'for another ttl from the renewal')
  })

  t.test('with Redis down, renewals fail and leadership runs out after the ttl', async (t) => {
    const key = freshKey()
    const { a } = pair(backend, key)
    let clock = 0
    // Same hash tag, same master: both leases lose their Redis at once.
    const timed = new Lease({ client: backend.a, key: `${key}:clock`, holder: 'c', ttlMs: 60_000, now: () => clock })
    const server = await backend.serverOf(key)
    t.equal(await timed.tryAcquire(), true)
    const started = performance.now()
    t.equal(await a.tryAcquire(), true)
    await server.kill()
    await t.rejects(a.renew(), 'a renewal without Redis rejects')
    await waitUntil(() => !a.isLeader, 'leadership to run out', 3000, 10)
    t.ok(performance.now() - started >= TTL_MS, 'not before the ttl had passed since the last success')
    await t.rejects(a.tryAcquire(), 'nor can it acquire')
    t.equal(a.isLeader, false)
    await t.rejects(timed.renew())
    t.equal(timed.isLeader, true, 'a failed renewal alone does not end leadership: the key may still be ours')
    clock += 60_000
    t.equal(timed.isLeader, false, 'the ttl since the last success does')
  })
}

t.test('options are checked and named', async (t) => {
  const client: LeaseClient = { call: async () => null }
  const good = { client, key: 'k', holder: 'h', ttlMs: 100 }
  t.throws(() => new Lease({ ...good, client: undefined as unknown as LeaseClient }), { name: 'TypeError', message: 'expected options.client to have a call() method, got undefined' })
  t.throws(() => new Lease({ ...good, key: '' }), { message: 'expected options.key to be a non-empty string, got ""' })
  t.throws(() => new Lease({ ...good, key: 7 as unknown as string }), { message: 'expected options.key to be a non-empty string, got 7' })
  t.throws(() => new Lease({ ...good, holder: '' }), { message: 'expected options.holder to be a non-empty string, got ""' })
  t.throws(() => new Lease({ ...good, holder: null as unknown as string }), { message: 'expected options.holder to be a non-empty string, got null' })
  for (const ttlMs of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => new Lease({ ...good, ttlMs }), { message: `expected options.ttlMs to be a positive integer of milliseconds, got ${String(ttlMs)}` }, String(ttlMs))
  }
  t.equal(new Lease(good).isLeader, false, 'nobody leads before acquiring')
})

t.test('standalone Redis', async (t) => {
  leaseCases(t, async (t) => {
    const server = await startRedis(t)
    return { a: await connect(t, { url: server.url }), b: await connect(t, { url: server.url }), serverOf: async () => server }
  })
})

t.test('Redis Cluster of 3 masters', async (t) => {
  leaseCases(t, async (t) => {
    const cluster = await startRedisCluster(t)
    return {
      a: await connect(t, { cluster: cluster.nodes }),
      b: await connect(t, { cluster: cluster.nodes }),
      serverOf: async (key) => {
        const [first] = cluster.servers as [RedisServer]
        const slot = Number(await first.cli('cluster', 'keyslot', key))
        const owner = parseClusterNodes(await first.cli('cluster', 'nodes')).find((node) => slotsOf(node.slots).includes(slot))
        const server = cluster.servers.find((server) => `127.0.0.1:${server.port}` === owner?.address)
        if (server === undefined) throw new Error(`no master of the cluster holds slot ${slot}`)
        return server
      }
    }
  })
})
