// The folding of an upstream's network failures, on a fake clock: the first whole, then one summary per interval, forgotten when quiet.
import { pino } from 'pino'
import t from 'tap'
import { gatewayError } from '../../../src/core/index.js'
import { FAILURE_SUMMARY_INTERVAL_MS, FailureFolder, isUpstreamNetworkFailure, upstreamFailureLog } from '../../../src/server/upstream-failure-log.js'

const A = { route: 'catalog', upstream: 'http://10.0.0.1:8080' }
const B = { route: 'catalog', upstream: 'http://10.0.0.2:8080' }

t.test('the first failure is logged whole, the next are counted, and one summary comes per interval', async (t) => {
  const clock = { now: 1_000_000 }
  const folder = new FailureFolder(() => clock.now)
  t.equal(folder.failed(A, 'refused 1'), 'first')
  const outcomes = new Set()
  for (let i = 2; i <= 500; i++) {
    clock.now += 10
    outcomes.add(folder.failed(A, `refused ${i}`))
  }
  t.same([...outcomes], [null], 'the next 499 are only counted')
  t.same(folder.due(), [], 'nothing due before the interval has passed')
  clock.now = 1_000_000 + FAILURE_SUMMARY_INTERVAL_MS
  t.same(folder.failed(A, 'refused 501'), { ...A, failures: 500, overMs: FAILURE_SUMMARY_INTERVAL_MS, last: 'refused 501' },
    'the failure that ends the interval brings its summary')
  clock.now += 1_000
  t.equal(folder.failed(A, 'refused 502'), null, 'the next interval starts at the summary')
  clock.now += FAILURE_SUMMARY_INTERVAL_MS
  t.same(folder.due(), [{ ...A, failures: 1, overMs: FAILURE_SUMMARY_INTERVAL_MS + 1_000, last: 'refused 502' }],
    'a timer gets the summary of an interval no failure ended')
  t.same(folder.due(), [], 'once')
})

t.test('each upstream is folded on its own', async (t) => {
  const clock = { now: 0 }
  const folder = new FailureFolder(() => clock.now)
  t.equal(folder.failed(A, 'a'), 'first')
  t.equal(folder.failed(B, 'b'), 'first', 'another upstream of the same route has its own first line')
  t.equal(folder.failed({ route: 'other', upstream: A.upstream }, 'c'), 'first', 'and the same upstream behind another route')
  t.equal(folder.failed(B, 'b2'), null)
  clock.now = FAILURE_SUMMARY_INTERVAL_MS
  t.same(folder.due(), [{ ...B, failures: 1, overMs: FAILURE_SUMMARY_INTERVAL_MS, last: 'b2' }], 'only B had failures to sum up')
})

t.test('an upstream quiet for a whole interval is forgotten: its next outage starts with a whole line again', async (t) => {
  const clock = { now: 0 }
  const folder = new FailureFolder(() => clock.now, 5_000)
  t.equal(folder.failed(A, 'down'), 'first')
  clock.now = 4_999
  t.same(folder.due(), [])
  clock.now = 5_000
  t.same(folder.due(), [], 'nothing to sum up')
  t.equal(folder.failed(A, 'down again'), 'first')
})

t.test('refused, reset, DNS and timeouts are network failures; a bad answer or the gateway\'s own fault are not', async (t) => {
  t.ok(isUpstreamNetworkFailure(gatewayError('BW_ERR_UPSTREAM_UNREACHABLE', 'refused')))
  t.ok(isUpstreamNetworkFailure(gatewayError('BW_ERR_UPSTREAM_TIMEOUT', 'slow')))
  t.notOk(isUpstreamNetworkFailure(gatewayError('BW_ERR_UPSTREAM_BAD_RESPONSE', 'garbled')))
  t.notOk(isUpstreamNetworkFailure(gatewayError('BW_ERR_GATEWAY_INTERNAL', 'bug')))
})

t.test('the log: a failure without an upstream address or a cause code still gets its line, and close stops the timer', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  const clock = { now: 0 }
  const log = upstreamFailureLog(logger, () => clock.now, 1_000)
  t.teardown(() => { log.close() })
  const slow = gatewayError('BW_ERR_UPSTREAM_TIMEOUT', 'the upstream of route r did not answer within 5 ms')
  log.failed(slow, 'r', 'req-1')
  t.same(lines.map(({ time: _time, pid: _pid, hostname: _hostname, ...line }) => line), [{
    level: 40,
    requestId: 'req-1',
    route: 'r',
    upstream: 'unknown',
    code: 'BW_ERR_UPSTREAM_TIMEOUT',
    msg: 'upstream unknown: the upstream of route r did not answer within 5 ms; its next failures are counted, in one line per 1 s'
  }])
  log.failed(slow, 'r', 'req-2')
  clock.now = 1_000
  log.failed(slow, 'r', 'req-3')
  t.match(lines[1], { route: 'r', failures: 2, overMs: 1_000, msg: '2 more failures of the upstream of route r (unknown) in 1 s; the last: the upstream of route r did not answer within 5 ms' })
  t.equal(lines.length, 2)
})
