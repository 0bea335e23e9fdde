// The breaker's state machine with a fake clock: triggers, lazy HALF_OPEN, trials, backoff, modes, commands, events, snapshots.
import t from 'tap'
import type { BreakerConfig } from '../../../src/config/index.js'
import {
  BreakerEvents, CircuitBreaker, DEFAULT_HALF_OPEN_RETRY_AFTER_MS, type BreakerStateName, type CallKind, type Permit, type Refusal,
  type TransitionReason
} from '../../../src/resilience/index.js'

const config = (extra: Partial<BreakerConfig> = {}): BreakerConfig => ({
  mode: 'enforce',
  failureThreshold: 5,
  failureRateThreshold: null,
  slidingWindowMs: 10_000,
  minimumCalls: 20,
  slowCallThresholdMs: 2000,
  slowCallRateThreshold: 100,
  recoveryTimeoutMs: 30_000,
  recoveryBackoff: null,
  halfOpenCalls: 1,
  failureStatuses: [500, 502, 503, 504],
  fallback: null,
  ...extra
})

interface Rig {
  breaker: CircuitBreaker
  clock: { now: number }
  transitions: Array<[BreakerStateName, BreakerStateName, TransitionReason]>
  calls: Array<[CallKind, number]>
  notPermitted: { count: number }
  /** One call through the breaker; returns what tryAcquire gave. */
  call: (outcome: 'success' | 'failure' | 'ignored', durationMs?: number) => Permit | Refusal
  permit: () => Permit
}

const rig = (extra: Partial<BreakerConfig> = {}, eventCapacity?: number): Rig => {
  const clock = { now: 0 }
  const transitions: Rig['transitions'] = []
  const calls: Rig['calls'] = []
  const notPermitted = { count: 0 }
  const events = new BreakerEvents()
  events.transition.subscribe(({ from, to, reason }) => transitions.push([from, to, reason]))
  events.call.subscribe(({ kind, durationMs }) => calls.push([kind, durationMs]))
  events.notPermitted.subscribe(() => notPermitted.count++)
  const breaker = new CircuitBreaker('catalog', config(extra), { now: () => clock.now, events, eventCapacity })
  const call: Rig['call'] = (outcome, durationMs = 10) => {
    const result = breaker.tryAcquire()
    if (result.permitted) breaker.onResult(result, outcome, durationMs, outcome === 'failure' ? 'HTTP 502' : undefined)
    return result
  }
  const permit = (): Permit => {
    const result = breaker.tryAcquire()
    if (!result.permitted) throw new Error(`expected a permit, got a refusal in ${result.state}`)
    return result
  }
  return { breaker, clock, transitions, calls, notPermitted, call, permit }
}

const failTimes = (r: Rig, n: number): void => { for (let i = 0; i < n; i++) r.call('failure') }

t.test('initial state follows the mode', async (t) => {
  t.equal(rig().breaker.state, 'CLOSED')
  t.equal(rig({ mode: 'observe' }).breaker.state, 'METRICS_ONLY')
  t.equal(rig({ mode: 'off' }).breaker.state, 'DISABLED')
})

t.test('exactly failureThreshold consecutive failures open it', async (t) => {
  const r = rig({ failureThreshold: 3 })
  failTimes(r, 2)
  t.equal(r.breaker.state, 'CLOSED', 'one fewer does not')
  r.call('success')
  failTimes(r, 2)
  t.equal(r.breaker.state, 'CLOSED', 'a success resets the count')
  r.call('ignored')
  r.call('failure')
  t.equal(r.breaker.state, 'OPEN', 'an ignored call neither counts nor resets')
  t.same(r.transitions, [['CLOSED', 'OPEN', 'failureThreshold']])
})

t.test('failure-rate trigger: only once minimumCalls are in the window, at exactly the threshold', async (t) => {
  const r = rig({ failureThreshold: 100, failureRateThreshold: 50, minimumCalls: 4 })
  r.call('failure')
  r.call('failure')
  r.call('failure')
  t.equal(r.breaker.state, 'CLOSED', '3 of 3 failed, but below minimumCalls')
  t.equal(r.breaker.snapshot().failureRate, -1)
  r.call('success')
  t.equal(r.breaker.state, 'OPEN', '3 of 4 = 75% >= 50%')
  t.same(r.transitions, [['CLOSED', 'OPEN', 'failureRate']])
  t.same(r.breaker.events().map((e) => e.type).slice(-3), ['SUCCESS', 'FAILURE_RATE_EXCEEDED', 'STATE_TRANSITION'])

  const exact = rig({ failureThreshold: 100, failureRateThreshold: 50, minimumCalls: 4 })
  exact.call('success')
  exact.call('failure')
  exact.call('success')
  t.equal(exact.breaker.state, 'CLOSED')
  exact.call('failure')
  t.equal(exact.breaker.state, 'OPEN', '2 of 4 = exactly 50% opens it')

  const below = rig({ failureThreshold: 100, failureRateThreshold: 50, minimumCalls: 4 })
  for (const outcome of ['success', 'failure', 'success', 'success', 'failure'] as const) below.call(outcome)
  t.equal(below.breaker.state, 'CLOSED', '2 of 5 = 40% does not')
  t.equal(below.breaker.snapshot().failureRate, 40)
})

t.test('without failureRateThreshold the rate never opens it', async (t) => {
  const r = rig({ failureThreshold: 100, minimumCalls: 2 })
  for (let i = 0; i < 50; i++) r.call(i % 2 === 0 ? 'failure' : 'success')
  t.equal(r.breaker.state, 'CLOSED')
  t.equal(r.breaker.snapshot().failureRate, 50)
  t.equal(r.breaker.snapshot().failureRateThreshold, 100, 'shown as 100 when unset')
})

t.test('slow-call trigger: slow means longer than slowCallThreshold, opens at the rate', async (t) => {
  const r = rig({ slowCallThresholdMs: 100, slowCallRateThreshold: 50, minimumCalls: 4 })
  r.call('success', 100)
  r.call('success', 100)
  r.call('success', 101)
  r.call('success', 5)
  t.equal(r.breaker.state, 'CLOSED', 'exactly the threshold is not slow: 1 of 4')
  t.equal(r.breaker.snapshot().slowCallRate, 25)
  r.call('success', 101)
  t.equal(r.breaker.state, 'CLOSED', '2 of 5 = 40%')
  r.call('failure', 101)
  t.equal(r.breaker.state, 'OPEN', '3 of 6 = 50%')
  t.same(r.transitions, [['CLOSED', 'OPEN', 'slowCallRate']])
  t.ok(r.breaker.events().some((e) => e.type === 'SLOW_CALL_RATE_EXCEEDED'))
  t.match(r.breaker.snapshot(), { bufferedCalls: 6, failedCalls: 1, slowCalls: 3, slowFailedCalls: 1, slowCallRate: 50 })
})

t.test('slowCallRateThreshold 100 is off: even all-slow calls do not open it', async (t) => {
  const r = rig({ slowCallThresholdMs: 100, slowCallRateThreshold: 100, minimumCalls: 2 })
  for (let i = 0; i < 30; i++) r.call('success', 5000)
  t.equal(r.breaker.state, 'CLOSED')
  t.equal(r.breaker.snapshot().slowCallRate, 100)
})

t.test('old calls leave the sliding window', async (t) => {
  const r = rig({ failureThreshold: 100, failureRateThreshold: 50, minimumCalls: 4, slidingWindowMs: 10_000 })
  r.call('failure')
  r.call('failure')
  r.call('failure')
  t.equal(r.breaker.snapshot().bufferedCalls, 3)
  r.clock.now = 10_000
  t.equal(r.breaker.snapshot().bufferedCalls, 0, 'a full window later they are gone')
  r.call('success')
  r.call('success')
  r.call('success')
  r.call('failure')
  t.equal(r.breaker.state, 'CLOSED', 'only 1 of 4 in the window failed')
  t.match(r.breaker.snapshot(), { bufferedCalls: 4, failedCalls: 1, failureRate: 25 })
})

t.test('OPEN refuses with the time left until the probe, counts refusals, moves to HALF_OPEN lazily', async (t) => {
  const r = rig({ failureThreshold: 2, recoveryTimeoutMs: 30_000 })
  r.clock.now = 1000
  failTimes(r, 2)
  t.equal(r.breaker.state, 'OPEN')
  r.clock.now = 11_000
  const refusal = r.breaker.tryAcquire()
  t.same(refusal, { permitted: false, state: 'OPEN', retryAfterMs: 20_000 })
  r.clock.now = 30_999
  t.match(r.breaker.tryAcquire(), { permitted: false, retryAfterMs: 1 })
  t.equal(r.notPermitted.count, 2)
  t.equal(r.breaker.snapshot().notPermittedCalls, 2)
  t.equal(r.breaker.events().filter((e) => e.type === 'NOT_PERMITTED').length, 2)

  r.clock.now = 31_000
  t.equal(r.breaker.state, 'OPEN', 'no timer: still OPEN until a call comes')
  const trial = r.breaker.tryAcquire()
  t.match(trial, { permitted: true, trial: true })
  t.equal(r.breaker.state, 'HALF_OPEN')
  t.same(r.transitions.at(-1), ['OPEN', 'HALF_OPEN', 'recoveryTimeout'])
})

t.test('HALF_OPEN lets exactly halfOpenCalls trials through; all succeed -> CLOSED with a fresh window', async (t) => {
  const r = rig({ failureThreshold: 2, halfOpenCalls: 3, recoveryTimeoutMs: 1000 })
  failTimes(r, 2)
  r.clock.now = 1000
  const trials = [r.permit(), r.permit(), r.permit()]
  t.same(r.breaker.tryAcquire(), { permitted: false, state: 'HALF_OPEN', retryAfterMs: DEFAULT_HALF_OPEN_RETRY_AFTER_MS })
  r.breaker.onResult(trials[0]!, 'success', 5)
  r.breaker.onResult(trials[1]!, 'success', 5)
  t.equal(r.breaker.state, 'HALF_OPEN')
  t.match(r.breaker.tryAcquire(), { permitted: false }, 'settled trials do not free permits')
  r.breaker.onResult(trials[2]!, 'success', 5)
  t.equal(r.breaker.state, 'CLOSED')
  t.same(r.transitions.at(-1), ['HALF_OPEN', 'CLOSED', 'halfOpenSuccess'])
  t.match(r.breaker.snapshot(), { bufferedCalls: 0, failedCalls: 0, notPermittedCalls: 0 })
  r.call('failure')
  t.equal(r.breaker.state, 'CLOSED', 'the consecutive count starts afresh')
})

t.test('a failed trial reopens at once, with backoff growing and capped, reset after CLOSED', async (t) => {
  const r = rig({ failureThreshold: 1, halfOpenCalls: 2, recoveryTimeoutMs: 1000, recoveryBackoff: { multiplier: 2, maxMs: 3000 } })
  const retryAfter = (): number => {
    const result = r.breaker.tryAcquire()
    if (result.permitted) throw new Error('expected a refusal')
    return result.retryAfterMs
  }
  r.call('failure')
  t.equal(retryAfter(), 1000, 'first open: recoveryTimeout')
  const waits: number[] = []
  for (let i = 0; i < 3; i++) {
    r.clock.now += retryAfter()
    const first = r.permit()
    const second = r.permit()
    r.breaker.onResult(first, 'failure', 5)
    t.equal(r.breaker.state, 'OPEN')
    r.breaker.onResult(second, 'success', 5)
    t.equal(r.breaker.state, 'OPEN', 'a stale trial settling later decides nothing')
    waits.push(retryAfter())
  }
  t.same(waits, [2000, 3000, 3000], 'x2 per re-open, capped at max')
  t.same(r.transitions.filter(([, to]) => to === 'OPEN').map(([, , reason]) => reason),
    ['failureThreshold', 'halfOpenFailure', 'halfOpenFailure', 'halfOpenFailure'])

  r.clock.now += 3000
  r.call('success')
  r.call('success')
  t.equal(r.breaker.state, 'CLOSED')
  r.call('failure')
  t.equal(retryAfter(), 1000, 'backoff reset once closed')
})

t.test('without recoveryBackoff every open waits recoveryTimeout', async (t) => {
  const r = rig({ failureThreshold: 1, recoveryTimeoutMs: 500 })
  r.call('failure')
  for (let i = 0; i < 3; i++) {
    t.match(r.breaker.tryAcquire(), { permitted: false, retryAfterMs: 500 })
    r.clock.now += 500
    r.call('failure')
  }
})

t.test('an ignored trial does not count and frees its permit', async (t) => {
  const r = rig({ failureThreshold: 1, recoveryTimeoutMs: 100 })
  r.call('failure')
  r.clock.now = 100
  const trial = r.permit()
  t.match(r.breaker.tryAcquire(), { permitted: false })
  r.breaker.onResult(trial, 'ignored', 5)
  t.equal(r.breaker.state, 'HALF_OPEN')
  const next = r.permit()
  r.breaker.onResult(next, 'success', 5)
  t.equal(r.breaker.state, 'CLOSED')
})

t.test('onResult counts once per permit and only for its own breaker', async (t) => {
  const r = rig({ failureThreshold: 2 })
  const other = rig({ failureThreshold: 1 })
  const permit = r.permit()
  r.breaker.onResult(permit, 'failure', 5)
  r.breaker.onResult(permit, 'failure', 5)
  t.equal(r.breaker.state, 'CLOSED', 'the second result is a no-op')
  t.equal(r.breaker.snapshot().bufferedCalls, 1)
  other.breaker.onResult(r.permit(), 'failure', 5)
  t.equal(other.breaker.state, 'CLOSED', "another breaker's permit is ignored")
  t.equal(other.breaker.snapshot().bufferedCalls, 0)
  r.breaker.onResult({ permitted: true, trial: false }, 'failure', 5)
  t.equal(r.breaker.snapshot().bufferedCalls, 1, 'a forged permit is ignored')
})

t.test('calls in flight when it opened are recorded but decide nothing', async (t) => {
  const r = rig({ failureThreshold: 1, halfOpenCalls: 1, recoveryTimeoutMs: 100 })
  const early = r.permit()
  const late = r.permit()
  r.call('failure')
  r.breaker.onResult(early, 'success', 5)
  t.equal(r.breaker.state, 'OPEN')
  t.equal(r.breaker.snapshot().bufferedCalls, 2)
  r.clock.now = 100
  const trial = r.permit()
  r.breaker.onResult(late, 'failure', 5)
  t.equal(r.breaker.state, 'HALF_OPEN', 'a CLOSED-era permit is no trial')
  r.breaker.onResult(trial, 'success', 5)
  t.equal(r.breaker.state, 'CLOSED')
})

t.test('ignored calls are not recorded in the window', async (t) => {
  const r = rig()
  r.call('ignored', 7)
  t.equal(r.breaker.snapshot().bufferedCalls, 0)
  t.same(r.calls, [['ignored', 7]])
  t.match(r.breaker.events()[0], { type: 'IGNORED_ERROR', durationInMs: 7 })
})

t.test('METRICS_ONLY never refuses, reports rates, emits the exceeded event once per crossing', async (t) => {
  const r = rig({ mode: 'observe', failureThreshold: 1, failureRateThreshold: 50, minimumCalls: 2 })
  for (let i = 0; i < 10; i++) t.match(r.call('failure'), { permitted: true })
  t.equal(r.breaker.state, 'METRICS_ONLY')
  t.match(r.breaker.snapshot(), { state: 'METRICS_ONLY', failureRate: 100, bufferedCalls: 10, failedCalls: 10, notPermittedCalls: 0 })
  t.equal(r.breaker.events().filter((e) => e.type === 'FAILURE_RATE_EXCEEDED').length, 1)
  for (let i = 0; i < 20; i++) r.call('success')
  r.call('failure')
  t.equal(r.breaker.events().filter((e) => e.type === 'FAILURE_RATE_EXCEEDED').length, 1, 'below the threshold again')
  r.clock.now = 20_000
  r.call('failure')
  r.call('failure')
  t.equal(r.breaker.events().filter((e) => e.type === 'FAILURE_RATE_EXCEEDED').length, 2, 'crossed again')
  t.same(r.transitions, [])
  t.equal(r.calls.filter(([kind]) => kind === 'failed').length, 13)
})

t.test('DISABLED permits everything and records nothing', async (t) => {
  const r = rig({ mode: 'off', failureThreshold: 1 })
  for (let i = 0; i < 10; i++) t.match(r.call('failure'), { permitted: true })
  t.equal(r.breaker.state, 'DISABLED')
  t.match(r.breaker.snapshot(), { bufferedCalls: 0, failedCalls: 0, failureRate: -1 })
  t.same(r.breaker.events(), [])
  t.same(r.calls, [])
})

t.test('commands: CLOSE, FORCE_OPEN, DISABLE, METRICS_ONLY', async (t) => {
  const r = rig({ failureThreshold: 1, recoveryTimeoutMs: 5000 })
  t.equal(r.breaker.transition('FORCE_OPEN'), 'FORCED_OPEN')
  r.clock.now = 1_000_000
  t.same(r.breaker.tryAcquire(), { permitted: false, state: 'FORCED_OPEN', retryAfterMs: 5000 }, 'refuses until another command')
  t.equal(r.breaker.snapshot().notPermittedCalls, 1)
  t.equal(r.breaker.transition('CLOSE'), 'CLOSED')
  t.match(r.breaker.snapshot(), { notPermittedCalls: 0 })
  r.call('failure')
  t.equal(r.breaker.state, 'OPEN')
  r.breaker.transition('CLOSE')
  t.equal(r.breaker.state, 'CLOSED', 'CLOSE leaves OPEN at once')
  t.equal(r.breaker.snapshot().bufferedCalls, 0, 'and resets the window')
  r.breaker.transition('DISABLE')
  r.call('failure')
  t.equal(r.breaker.state, 'DISABLED')
  r.breaker.transition('METRICS_ONLY')
  r.call('failure')
  t.equal(r.breaker.state, 'METRICS_ONLY')
  t.same(r.transitions, [
    ['CLOSED', 'FORCED_OPEN', 'command'],
    ['FORCED_OPEN', 'CLOSED', 'command'],
    ['CLOSED', 'OPEN', 'failureThreshold'],
    ['OPEN', 'CLOSED', 'command'],
    ['CLOSED', 'DISABLED', 'command'],
    ['DISABLED', 'METRICS_ONLY', 'command']
  ], 'breaker.transition once per change')
  t.same(r.breaker.events().filter((e) => e.type === 'STATE_TRANSITION').map((e) => e.stateTransition), [
    'CLOSED_TO_FORCED_OPEN', 'FORCED_OPEN_TO_CLOSED', 'CLOSED_TO_OPEN', 'OPEN_TO_CLOSED', 'CLOSED_TO_DISABLED', 'DISABLED_TO_METRICS_ONLY'
  ])
})

t.test('a command for the current state resets the window: RESET, no transition', async (t) => {
  const r = rig({ failureThreshold: 3 })
  failTimes(r, 2)
  t.equal(r.breaker.transition('CLOSE'), 'CLOSED')
  t.same(r.transitions, [])
  t.equal(r.breaker.events().at(-1)?.type, 'RESET')
  t.equal(r.breaker.snapshot().bufferedCalls, 0)
  failTimes(r, 2)
  t.equal(r.breaker.state, 'CLOSED', 'the consecutive count was reset too')
})

t.test('a permit from before FORCE_OPEN settles without being recorded', async (t) => {
  const r = rig()
  const permit = r.permit()
  r.breaker.transition('FORCE_OPEN')
  r.breaker.onResult(permit, 'failure', 5)
  t.equal(r.breaker.snapshot().bufferedCalls, 0)
})

t.test('events: the ring keeps the latest, in the actuator shape', async (t) => {
  const r = rig({ failureThreshold: 1000 }, 5)
  r.clock.now = Date.UTC(2025, 0, 2, 3, 4, 5)
  r.call('success', 12)
  r.call('failure', 34)
  t.same(r.breaker.events(), [
    { circuitBreakerName: 'catalog', type: 'SUCCESS', creationTime: '2025-01-02T03:04:05.000Z', durationInMs: 12 },
    { circuitBreakerName: 'catalog', type: 'ERROR', creationTime: '2025-01-02T03:04:05.000Z', durationInMs: 34, errorMessage: 'HTTP 502' }
  ])
  for (let i = 0; i < 10; i++) r.call('success', i)
  const events = r.breaker.events()
  t.equal(events.length, 5, 'bounded')
  t.same(events.map((e) => e.durationInMs), [5, 6, 7, 8, 9], 'oldest dropped, oldest first')

  const defaults = rig({ failureThreshold: 1000 })
  for (let i = 0; i < 150; i++) defaults.call('success', i)
  t.equal(defaults.breaker.events().length, 100, '100 per breaker by default')
})

t.test('snapshot has the ten fields and the name', async (t) => {
  const r = rig({ failureRateThreshold: 40, slowCallRateThreshold: 80 })
  t.same(r.breaker.snapshot(), {
    name: 'catalog',
    state: 'CLOSED',
    failureRate: -1,
    failureRateThreshold: 40,
    slowCallRate: -1,
    slowCallRateThreshold: 80,
    bufferedCalls: 0,
    failedCalls: 0,
    slowCalls: 0,
    slowFailedCalls: 0,
    notPermittedCalls: 0
  })
})

t.test('listeners see each recorded call and refusal', async (t) => {
  const r = rig({ failureThreshold: 1 })
  r.call('success', 3)
  r.call('failure', 4)
  r.call('success', 5)
  t.same(r.calls, [['successful', 3], ['failed', 4]])
  t.equal(r.notPermitted.count, 1)
})

t.test('a breaker works without options, on the real clock', async (t) => {
  const breaker = new CircuitBreaker('plain', config({ failureThreshold: 1 }))
  const permit = breaker.tryAcquire()
  if (!permit.permitted) throw new Error('expected a permit')
  breaker.onResult(permit, 'failure', 1)
  t.equal(breaker.state, 'OPEN')
  t.match(breaker.tryAcquire(), { permitted: false, state: 'OPEN' })
})
