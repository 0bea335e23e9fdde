// The retry policy as a table: methods, conditions, backoff bounds with a fixed random, Retry-After capped.
import t from 'tap'
import type { RetryConfig } from '../../../src/config/index.js'
import { backoffMs, isRetryableMethod, parseRetryAfterSeconds, shouldRetry } from '../../../src/resilience/index.js'

const retry = (extra: Partial<RetryConfig> = {}): RetryConfig => ({
  retries: 2,
  backoffMs: 100,
  maxBackoffMs: 2000,
  statuses: [502, 503, 504],
  onConnect: true,
  onTimeout: true,
  ...extra
})

t.test('only idempotent methods are retried', async (t) => {
  for (const method of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']) t.ok(isRetryableMethod(method), method)
  for (const method of ['POST', 'PATCH', 'TRACE', 'CONNECT', 'get']) t.notOk(isRetryableMethod(method), method)
})

t.test('retry conditions', async (t) => {
  const cases: Array<[string, RetryConfig, Parameters<typeof shouldRetry>[1], boolean]> = [
    ['502 listed', retry(), { status: 502 }, true],
    ['503 listed', retry(), { status: 503 }, true],
    ['500 not listed', retry(), { status: 500 }, false],
    ['4xx never', retry(), { status: 404 }, false],
    ['connect', retry(), { kind: 'connect' }, true],
    ['timeout', retry(), { kind: 'timeout' }, true],
    ['connect not listed', retry({ onConnect: false }), { kind: 'connect' }, false],
    ['timeout not listed', retry({ onTimeout: false }), { kind: 'timeout' }, false],
    ['nothing known', retry(), {}, false],
    ['retries 0', retry({ retries: 0 }), { status: 502 }, false]
  ]
  for (const [name, config, failure, expected] of cases) t.equal(shouldRetry(config, failure), expected, name)
})

t.test('exponential backoff with full jitter, attempt 0 before the first retry', async (t) => {
  const config = retry({ backoffMs: 100, maxBackoffMs: 1000 })
  const top = (): number => 0.999999
  t.equal(backoffMs(config, 0, () => 0), 0, 'the lower bound is 0')
  t.equal(backoffMs(config, 0, () => 0.5), 50)
  t.equal(backoffMs(config, 1, () => 0.5), 100)
  t.equal(backoffMs(config, 2, () => 0.5), 200)
  t.ok(backoffMs(config, 3, top) < 800 && backoffMs(config, 3, top) > 799, 'below 100 * 2^3')
  t.ok(backoffMs(config, 10, top) < 1000 && backoffMs(config, 10, top) > 999, 'capped at maxBackoff')
  for (let i = 0; i < 100; i++) {
    const wait = backoffMs(config, 2)
    t.ok(wait >= 0 && wait < 400, `Math.random by default: ${wait}`)
  }
})

t.test('Retry-After replaces the backoff, capped at maxBackoff', async (t) => {
  const config = retry({ maxBackoffMs: 2000 })
  t.equal(backoffMs(config, 0, () => 0.5, 1), 1000)
  t.equal(backoffMs(config, 0, () => 0.5, 0), 0)
  t.equal(backoffMs(config, 0, () => 0.5, 120), 2000, 'capped')
  t.equal(backoffMs(config, 0, () => 0.5, Number.NaN), 50, 'an unusable value is ignored')
  t.equal(backoffMs(config, 0, () => 0.5, -1), 50)
})

t.test('Retry-After parsing (RFC 9110 section 10.2.3)', async (t) => {
  const now = Date.UTC(2025, 0, 1, 0, 0, 0)
  t.equal(parseRetryAfterSeconds('120', now), 120)
  t.equal(parseRetryAfterSeconds(' 3 ', now), 3)
  t.equal(parseRetryAfterSeconds('Wed, 01 Jan 2025 00:00:30 GMT', now), 30)
  t.equal(parseRetryAfterSeconds('Tue, 31 Dec 2024 23:00:00 GMT', now), 0, 'a past date is now')
  t.equal(parseRetryAfterSeconds('Sunday, 06-Nov-94 08:49:37 GMT', now), 0, 'the obsolete RFC 850 form')
  t.equal(parseRetryAfterSeconds('soon', now), undefined)
  t.equal(parseRetryAfterSeconds('-5', now), undefined)
  t.equal(parseRetryAfterSeconds(undefined), undefined)
  t.type(parseRetryAfterSeconds('1'), 'number')
})
