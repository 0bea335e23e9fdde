// An upstream's outage in the log: its first refused connect as one line without a stack, naming the upstream; the repeats folded.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import t from 'tap'
import { request } from 'undici'
import { FAILURE_SUMMARY_INTERVAL_MS } from '../../src/server/upstream-failure-log.js'
import { FakeClock } from '../helpers/clock.js'
import { startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/wait.js'

t.test('a refused upstream: one warn line without a stack for the first failure, then one summary with the count', async (t) => {
  // A port that was just free: bound, noted, closed.
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))

  const lines: Array<Record<string, unknown>> = []
  const text: string[] = []
  const logger = pino({ level: 'info' }, {
    write: (line: string) => {
      text.push(line)
      lines.push(JSON.parse(line) as Record<string, unknown>)
    }
  })
  const clock = new FakeClock(() => 1_000_000)
  const { url } = await startGateway(t, `
routes:
  - id: gone
    prefix: /
    upstream: http://127.0.0.1:${port}
    breaker: {mode: off}
`, { logger, now: clock.now })

  const get = async (id: string): Promise<number> => {
    const res = await request(`${url}/x`, { headers: { 'x-request-id': id } })
    await res.body.dump()
    return res.statusCode
  }
  const statuses = new Set<number>()
  for (let i = 0; i < 20; i++) statuses.add(await get(`refused-${i}`))
  t.same([...statuses], [502], 'every request is answered 502')
  const warnings = (): Array<Record<string, unknown>> => lines.filter((line) => line.level === 40)
  t.equal(warnings().length, 1, 'one warn line for 20 failures')
  t.match(warnings()[0], {
    requestId: 'refused-0',
    route: 'gone',
    upstream: `http://127.0.0.1:${port}`,
    code: 'BW_ERR_UPSTREAM_UNREACHABLE',
    cause: 'ECONNREFUSED',
    msg: `upstream http://127.0.0.1:${port}: the upstream of route gone could not be reached (ECONNREFUSED); its next failures are counted, in one line per ${FAILURE_SUMMARY_INTERVAL_MS / 1000} s`
  }, 'the first failure, naming the upstream')
  t.notOk(text.some((line) => line.includes('"stack"') || line.includes('"err"')), 'no line carries the error with its stack')
  const accessLines = lines.filter((line) => line.msg === 'request' && line.route === 'gone')
  t.equal(accessLines.length, 20, 'each request still has its access line')
  t.match(accessLines[19], { requestId: 'refused-19', status: 502, code: 'BW_ERR_UPSTREAM_UNREACHABLE' }, 'with the code of the failure')

  clock.advance(FAILURE_SUMMARY_INTERVAL_MS)
  t.equal(await get('refused-20'), 502)
  t.equal(warnings().length, 2, 'the failure after the interval brings one summary')
  t.match(warnings()[1], { route: 'gone', upstream: `http://127.0.0.1:${port}`, failures: 20, overMs: FAILURE_SUMMARY_INTERVAL_MS, msg: /^20 more failures of the upstream of route gone/ })

  t.equal(await get('refused-21'), 502)
  clock.advance(FAILURE_SUMMARY_INTERVAL_MS)
  // The gateway looks for summaries due every second, on its clock.
  await waitUntil(() => warnings().length === 3, 'the summary of an interval no failure ended')
  t.match(warnings()[2], { failures: 1, msg: /^1 more failure of the upstream of route gone/ })
})
