// The registry: one breaker per route, sorted listing, listeners told which breaker spoke.
import t from 'tap'
import type { BreakerConfig } from '../../../src/config/index.js'
import { BreakerRegistry } from '../../../src/resilience/index.js'

const breaker = (extra: Partial<BreakerConfig> = {}): BreakerConfig => ({
  mode: 'enforce',
  failureThreshold: 1,
  failureRateThreshold: null,
  slidingWindowMs: 10_000,
  minimumCalls: 20,
  slowCallThresholdMs: 60_000,
  slowCallRateThreshold: 100,
  recoveryTimeoutMs: 30_000,
  recoveryBackoff: null,
  halfOpenCalls: 1,
  failureStatuses: [500],
  fallback: null,
  ...extra
})

t.test('one breaker per route, by id, listed by name', async (t) => {
  const registry = new BreakerRegistry([
    { id: 'orders', breaker: breaker() },
    { id: 'catalog', breaker: breaker({ mode: 'observe' }) },
    { id: 'users', breaker: breaker({ mode: 'off' }) }
  ])
  t.same(registry.all().map((b) => b.name), ['catalog', 'orders', 'users'])
  t.equal(registry.get('catalog')?.state, 'METRICS_ONLY')
  t.equal(registry.get('users')?.state, 'DISABLED')
  t.equal(registry.get('missing'), undefined)
  t.throws(() => new BreakerRegistry([{ id: 'a', breaker: breaker() }, { id: 'a', breaker: breaker() }]), /got a twice/)
})

t.test('the clock and listeners reach every breaker, with its name', async (t) => {
  let now = 0
  const seen: string[] = []
  const registry = new BreakerRegistry([{ id: 'a', breaker: breaker() }, { id: 'b', breaker: breaker() }], {
    now: () => now,
    eventCapacity: 2
  })
  registry.events.transition.subscribe(({ name, from, to, reason }) => seen.push(`${name} ${from}->${to} ${reason}`))
  registry.events.call.subscribe(({ name, kind, durationMs }) => seen.push(`${name} ${kind} ${durationMs}`))
  registry.events.notPermitted.subscribe(({ name }) => seen.push(`${name} not permitted`))
  const b = registry.get('b')!
  const permit = b.tryAcquire()
  if (!permit.permitted) throw new Error('expected a permit')
  now = 5
  b.onResult(permit, 'failure', 5)
  b.tryAcquire()
  t.same(seen, ['b failed 5', 'b CLOSED->OPEN failureThreshold', 'b not permitted'])
  t.match(b.tryAcquire(), { retryAfterMs: 30_000 }, 'opened at the injected time')
  t.equal(b.events().length, 2)
  t.equal(registry.get('a')?.state, 'CLOSED')
})

t.test('without listeners nothing is wired', async (t) => {
  const registry = new BreakerRegistry([{ id: 'a', breaker: breaker() }])
  const a = registry.get('a')!
  const permit = a.tryAcquire()
  if (!permit.permitted) throw new Error('expected a permit')
  a.onResult(permit, 'failure', 1)
  t.match(a.tryAcquire(), { permitted: false })
})
