// The time-based window: bucket width, expiry at bucket granularity, long clock jumps, a clock that goes back, reset.
import t from 'tap'
import { EventRing, MAX_BUCKET_MS, SlidingWindow } from '../../../src/resilience/index.js'

t.test('buckets: a tenth of the window, at most a second', async (t) => {
  t.equal(new SlidingWindow(10_000).bucketMs, MAX_BUCKET_MS)
  t.equal(new SlidingWindow(60_000).bucketMs, 1000)
  t.equal(new SlidingWindow(500).bucketMs, 50)
  t.equal(new SlidingWindow(5).bucketMs, 1)
  t.throws(() => new SlidingWindow(0), /expected windowMs to be a positive number, got 0/)
})

t.test('counts calls, failures, slow calls and slow failures', async (t) => {
  const window = new SlidingWindow(10_000)
  window.record(0, false, false)
  window.record(100, true, false)
  window.record(200, false, true)
  t.same(window.record(300, true, true), { calls: 4, failures: 2, slowCalls: 2, slowFailures: 1 })
})

t.test('a call leaves the window once its bucket is a full window old', async (t) => {
  const window = new SlidingWindow(10_000)
  window.record(1500, true, false)
  window.record(4000, false, false)
  t.equal(window.totals(10_999).calls, 2)
  t.same(window.totals(11_000), { calls: 1, failures: 0, slowCalls: 0, slowFailures: 0 }, 'the bucket [1000, 2000) expired')
  t.equal(window.totals(13_999).calls, 1)
  t.equal(window.totals(14_000).calls, 0)
})

t.test('a long jump clears everything; a clock that goes back stands still', async (t) => {
  const window = new SlidingWindow(1000)
  for (let now = 0; now < 1000; now += 10) window.record(now, true, false)
  t.equal(window.totals(999).calls, 100)
  t.equal(window.totals(1_000_000_000).calls, 0)
  window.record(1_000_000_000, false, false)
  t.equal(window.record(5, false, false).calls, 2, 'recorded in the current bucket')
})

t.test('reset empties it', async (t) => {
  const window = new SlidingWindow(1000)
  window.record(0, true, true)
  window.reset()
  t.same(window.totals(0), { calls: 0, failures: 0, slowCalls: 0, slowFailures: 0 })
  t.equal(window.record(0, false, false).calls, 1)
})

t.test('the event ring keeps the newest, oldest first', async (t) => {
  const ring = new EventRing<number>(3)
  t.same(ring.toArray(), [])
  ring.push(1)
  ring.push(2)
  t.same(ring.toArray(), [1, 2])
  for (const n of [3, 4, 5]) ring.push(n)
  t.same(ring.toArray(), [3, 4, 5])
  t.equal(new EventRing().capacity, 100)
  t.throws(() => new EventRing(0), /expected capacity to be a positive integer, got 0/)
})
