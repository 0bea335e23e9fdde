// The actuator's pure parts: Resilience4j's number formats, health statuses, the Accept check and the token guard.
import t from 'tap'
import {
  acceptsOpenMetrics, BearerGuard, breakerHealthStatus, circuitBreakersHealth, javaFloat, percent, prefersActuatorV3
} from '../../../src/actuator/index.js'
import type { BreakerSnapshot } from '../../../src/resilience/types.js'

const snapshot = (name: string, state: BreakerSnapshot['state']): BreakerSnapshot => ({
  name, state, failureRate: -1, failureRateThreshold: 50, slowCallRate: -1, slowCallRateThreshold: 100, bufferedCalls: 0, failedCalls: 0, slowCalls: 0, slowFailedCalls: 0, notPermittedCalls: 0
})

t.test('rates print as Java floats with a percent sign', async (t) => {
  t.equal(javaFloat(-1), '-1.0')
  t.equal(javaFloat(50), '50.0')
  t.equal(javaFloat(100 / 3), '33.333333')
  t.equal(percent(12.5), '12.5%')
})

t.test('breaker health statuses and their aggregate', async (t) => {
  t.same(['CLOSED', 'OPEN', 'HALF_OPEN', 'FORCED_OPEN', 'DISABLED', 'METRICS_ONLY'].map((s) => breakerHealthStatus(s as BreakerSnapshot['state'])),
    ['UP', 'CIRCUIT_OPEN', 'CIRCUIT_HALF_OPEN', 'UNKNOWN', 'UNKNOWN', 'UNKNOWN'])
  t.equal(circuitBreakersHealth([]).status, 'UP')
  t.equal(circuitBreakersHealth([snapshot('a', 'CLOSED'), snapshot('b', 'HALF_OPEN')]).status, 'CIRCUIT_HALF_OPEN')
  t.equal(circuitBreakersHealth([snapshot('a', 'HALF_OPEN'), snapshot('b', 'OPEN')]).status, 'CIRCUIT_OPEN')
  t.equal(circuitBreakersHealth([snapshot('a', 'DISABLED')]).status, 'UNKNOWN')
  t.same(Object.keys(circuitBreakersHealth([snapshot('b', 'CLOSED'), snapshot('a', 'CLOSED')]).details ?? {}), ['a', 'b'])
})

t.test('OpenMetrics only when an Accept range asks for it with q above 0', async (t) => {
  t.notOk(acceptsOpenMetrics(undefined))
  t.notOk(acceptsOpenMetrics('text/plain'))
  t.notOk(acceptsOpenMetrics('application/openmetrics-text; q=0'))
  t.ok(acceptsOpenMetrics('Application/OpenMetrics-Text'))
  t.ok(acceptsOpenMetrics('text/plain;q=0.5, application/openmetrics-text;version=1.0.0;q=0.9'))
})

t.test('Spring\'s v3 type when the client prefers it over plain JSON; plain JSON otherwise', async (t) => {
  const V3 = 'application/vnd.spring-boot.actuator.v3+json'
  t.notOk(prefersActuatorV3(undefined))
  t.notOk(prefersActuatorV3('*/*'))
  t.notOk(prefersActuatorV3('application/json'))
  t.ok(prefersActuatorV3(V3))
  t.ok(prefersActuatorV3('Application/VND.Spring-Boot.Actuator.V3+JSON'), 'media types are case-insensitive')
  t.notOk(prefersActuatorV3(`${V3};q=0`), 'q=0 is "not acceptable"')
  t.ok(prefersActuatorV3(`${V3}, */*`), 'named before an equal wildcard')
  t.notOk(prefersActuatorV3(`*/*, ${V3}`), 'an equal q keeps the first named')
  t.ok(prefersActuatorV3(`*/*;q=0.1, ${V3}`))
  t.notOk(prefersActuatorV3(`${V3};q=0.5, application/*`))
  t.ok(prefersActuatorV3(`${V3};q=0.5, application/json;q=0.4, */*`), 'application/json\'s own range wins over */*')
  t.notOk(prefersActuatorV3('application/vnd.spring-boot.actuator.v3+jsonx'), 'a look-alike is not the type')
})

t.test('the bearer guard', async (t) => {
  t.equal(new BearerGuard(null).check('Bearer x'), 'no-token-configured')
  t.equal(new BearerGuard('').check('Bearer '), 'no-token-configured')
  const guard = new BearerGuard('tok')
  t.equal(guard.check(undefined), 'missing')
  t.equal(guard.check(''), 'missing')
  t.equal(guard.check('Bearer tok'), 'ok')
  t.equal(guard.check('bearer \ttok '), 'ok')
  t.equal(guard.check('Bearer to'), 'invalid')
  t.equal(guard.check('Bearer tok2'), 'invalid')
  t.equal(guard.check('tok'), 'invalid', 'the scheme is required')
})
