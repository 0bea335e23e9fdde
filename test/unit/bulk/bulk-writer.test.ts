// The bulk writer with a scripted `send` of our own: body encoding, per-item mapping, retries and the errors they end in.
import t from 'tap'
import {
  BulkWriter, DEFAULT_BULK_MAX_RESPONSE_BYTES, type BulkAttemptOutcome, type BulkItemResult, type BulkSendRequest,
  type BulkSendResponse, type BulkWriterOptions
} from '../../../src/bulk/index.js'
import { gatewayError, isGatewayError } from '../../../src/core/index.js'

/** One step of a scripted upstream: an answer, or what `send` rejects with. */
type Step = BulkSendResponse | Error

interface Rig {
  writer: BulkWriter
  /** Every request `send` was given, in order. */
  sent: BulkSendRequest[]
  /** The ms each retry waited. */
  slept: number[]
  /** delayMs's attempt numbers. */
  delays: number[]
  /** onAttempt's calls as `outcome:attempt:batch`. */
  attempts: string[]
}

/** A writer whose `send` plays `steps` in order (the last one repeats), with waits that take no time. */
const rig = (steps: Step[], options: Partial<BulkWriterOptions> = {}): Rig => {
  const sent: BulkSendRequest[] = []
  const slept: number[] = []
  const delays: number[] = []
  const attempts: string[] = []
  let batches = 0
  const writer = new BulkWriter({
    path: '/api/events/_bulk',
    format: 'json-array',
    send: async (request) => {
      sent.push(request)
      const step = steps[Math.min(sent.length, steps.length) - 1] as Step
      if (step instanceof Error) throw step
      return step
    },
    retry: { retries: 2, delayMs: (attempt) => { delays.push(attempt); return 100 * (attempt + 1) } },
    sleep: async (ms) => { slept.push(ms) },
    newBatchId: () => `b${++batches}`,
    onAttempt: (outcome: BulkAttemptOutcome, attempt, batchId) => { attempts.push(`${outcome}:${attempt}:${batchId}`) },
    ...options
  })
  return { writer, sent, slept, delays, attempts }
}

const json = (status: number, value: unknown): BulkSendResponse => ({
  status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(value))
})

const items = (...values: unknown[]): Buffer[] => values.map((value) => Buffer.from(JSON.stringify(value)))

/** Each result as `status contentType body`, or an Error as `code statusCode`. */
const show = (results: ReadonlyArray<BulkItemResult | Error>): string[] => results.map((result) => {
  if (result instanceof Error) {
    const { code, statusCode } = result as Error & { code?: string, statusCode?: number }
    return `${String(code)} ${String(statusCode)}`
  }
  return `${result.status} ${result.contentType} ${result.body.toString('utf8')}`
})

const ack = (batch: string, index: number): string => `200 application/json {"batch":"${batch}","index":${index}}`

t.test('defaults and option checks name the option', async (t) => {
  const send = async (): Promise<BulkSendResponse> => json(200, [])
  const base: BulkWriterOptions = { path: '/bulk', format: 'ndjson', send, retry: { retries: 0, delayMs: () => 0 } }
  const writer = new BulkWriter(base)
  t.equal(DEFAULT_BULK_MAX_RESPONSE_BYTES, 10 * 1024 * 1024)
  t.same([writer.path, writer.format, writer.retries, writer.maxResponseBytes], ['/bulk', 'ndjson', 0, DEFAULT_BULK_MAX_RESPONSE_BYTES])

  const bad: Array<[Partial<BulkWriterOptions>, string, string]> = [
    [{ path: 'bulk' }, 'TypeError', 'expected options.path to be a path starting with /, got bulk'],
    [{ format: 'csv' as 'ndjson' }, 'TypeError', 'expected options.format to be json-array or ndjson, got csv'],
    [{ send: undefined }, 'TypeError', 'expected options.send to be a function, got undefined'],
    [{ retry: { retries: -1, delayMs: () => 0 } }, 'RangeError', 'expected options.retry.retries to be a non-negative integer, got -1'],
    [{ retry: { retries: 1.5, delayMs: () => 0 } }, 'RangeError', 'expected options.retry.retries to be a non-negative integer, got 1.5'],
    [{ retry: undefined }, 'RangeError', 'expected options.retry.retries to be a non-negative integer, got undefined'],
    [{ retry: { retries: 1 } as BulkWriterOptions['retry'] }, 'TypeError', 'expected options.retry.delayMs to be a function, got undefined'],
    [{ maxResponseBytes: 0 }, 'RangeError', 'expected options.maxResponseBytes to be a positive integer of bytes, got 0']
  ]
  for (const [override, name, message] of bad) {
    t.throws(() => new BulkWriter({ ...base, ...override } as BulkWriterOptions), { name, message })
  }
})

t.test('json-array: one POST of [item,...] with the batch id, its size and the answer limit', async (t) => {
  const r = rig([json(200, {})], { maxResponseBytes: 1234 })
  await r.writer.dispatch(items({ a: 1 }, 'two', [3]))
  t.equal(r.sent.length, 1)
  t.same(r.sent[0], {
    method: 'POST',
    path: '/api/events/_bulk',
    headers: { 'content-type': 'application/json', 'x-bulk-batch-id': 'b1', 'x-bulk-size': '3' },
    body: Buffer.from('[{"a":1},"two",[3]]'),
    maxBytes: 1234
  })
  t.same(JSON.parse((r.sent[0] as BulkSendRequest).body.toString()), [{ a: 1 }, 'two', [3]], 'the body is valid JSON')
})

t.test('ndjson: each item on its own line, newline-terminated, as application/x-ndjson', async (t) => {
  const r = rig([json(200, {})], { format: 'ndjson' })
  await r.writer.dispatch(items({ a: 1 }, 2))
  const request = r.sent[0] as BulkSendRequest
  t.equal(request.body.toString(), '{"a":1}\n2\n')
  t.same(request.headers, { 'content-type': 'application/x-ndjson', 'x-bulk-batch-id': 'b1', 'x-bulk-size': '2' })
  t.equal(r.writer.encode([]).length, 0, 'an empty batch is an empty body')
  await r.writer.dispatch(items(3), { 'x-bulk-item-ids': '1-0', 'x-bulk-size': '99' })
  t.same((r.sent[1] as BulkSendRequest).headers, {
    'x-bulk-item-ids': '1-0', 'content-type': 'application/x-ndjson', 'x-bulk-batch-id': 'b2', 'x-bulk-size': '1'
  }, 'more headers ride along, and never replace the batch\'s own')
  t.equal(rig([]).writer.encode([]).toString(), '[]')
})

t.test('a 2xx array as long as the batch: element i is item i, its status field or the upstream status', async (t) => {
  const r = rig([json(207, [{ status: 201, id: 'x' }, { status: 409, error: 'duplicate' }, { id: 'z' }, 'plain', null, { status: 600 }, { status: '404' }, { status: 200.5 }])])
  const results = await r.writer.dispatch(items(1, 2, 3, 4, 5, 6, 7, 8))
  t.same(show(results), [
    '201 application/json {"status":201,"id":"x"}',
    '409 application/json {"status":409,"error":"duplicate"}',
    '207 application/json {"id":"z"}',
    '207 application/json "plain"',
    '207 application/json null',
    '207 application/json {"status":600}',
    '207 application/json {"status":"404"}',
    '207 application/json {"status":200.5}'
  ], 'only an integer status in 100-599 replaces the upstream one')
  t.equal(r.sent.length, 1, 'a per-item error status is not retried')
  t.same(r.attempts, ['success:0:b1'])
  t.same(r.slept, [])
})

t.test('any other 2xx: every item gets 200 {"batch","index"}', async (t) => {
  const answers: Array<[string, BulkSendResponse]> = [
    ['an array of the wrong length', json(200, [{ status: 201 }])],
    ['an object', json(200, { took: 3 })],
    ['not JSON', { status: 202, headers: {}, body: Buffer.from('accepted') }],
    ['no body', { status: 204, headers: {}, body: Buffer.alloc(0) }]
  ]
  for (const [name, answer] of answers) {
    const r = rig([answer])
    t.same(show(await r.writer.dispatch(items('a', 'b'))), [ack('b1', 0), ack('b1', 1)], name)
    t.same(r.attempts, ['success:0:b1'], `${name} is a success`)
  }
})

t.test('a 5xx is retried under the same batch id, then the success answers', async (t) => {
  const r = rig([json(503, { error: 'busy' }), json(500, {}), json(200, [{ ok: 1 }, { ok: 2 }])])
  const results = await r.writer.dispatch(items('a', 'b'))
  t.same(show(results), ['200 application/json {"ok":1}', '200 application/json {"ok":2}'])
  t.equal(r.sent.length, 3)
  t.same(r.sent.map((request) => request.headers['x-bulk-batch-id']), ['b1', 'b1', 'b1'], 'upstreams can de-duplicate')
  t.ok(r.sent.every((request) => request.body === (r.sent[0] as BulkSendRequest).body), 'the same body each time')
  t.same(r.delays, [0, 1], 'delayMs counts the retries made')
  t.same(r.slept, [100, 200], 'and its answer is waited')
  t.same(r.attempts, ['retry:0:b1', 'retry:1:b1', 'success:2:b1'])
})

t.test('timeouts and connect errors are retried too', async (t) => {
  const r = rig([
    gatewayError('BW_ERR_UPSTREAM_TIMEOUT', 'slow'),
    gatewayError('BW_ERR_UPSTREAM_UNREACHABLE', 'down'),
    json(200, 'ok')
  ])
  t.same(show(await r.writer.dispatch(items(1))), [ack('b1', 0)])
  t.equal(r.sent.length, 3)
})

t.test('retries exhausted: every item gets one error with the last failure\'s code and status', async (t) => {
  const cases: Array<[string, Step, string, number]> = [
    ['a 5xx', json(502, {}), 'BW_ERR_UPSTREAM_BAD_RESPONSE', 502],
    ['a timeout', gatewayError('BW_ERR_UPSTREAM_TIMEOUT', 'http://u did not answer within 5 ms'), 'BW_ERR_UPSTREAM_TIMEOUT', 504],
    ['a connect error', gatewayError('BW_ERR_UPSTREAM_UNREACHABLE', 'http://u could not be reached'), 'BW_ERR_UPSTREAM_UNREACHABLE', 502]
  ]
  for (const [name, step, code, status] of cases) {
    const r = rig([step])
    const results = await r.writer.dispatch(items('a', 'b', 'c'))
    t.same(show(results), [`${code} ${status}`, `${code} ${status}`, `${code} ${status}`], name)
    t.equal(r.sent.length, 3, `${name}: the first attempt and two retries`)
    t.same(r.attempts, ['retry:0:b1', 'retry:1:b1', 'failed:2:b1'])
    const error = results[0] as Error
    t.ok(isGatewayError(error))
    t.match(error.message, /^bulk batch b1 failed after 3 attempts: /, `${name}: the detail names the batch`)
    t.ok(results.every((result) => result === error), 'one error for the batch')
  }
  const last = json(500, {})
  const r = rig([last])
  const [error] = await r.writer.dispatch(items('a')) as Error[]
  t.equal((error as Error).message, 'bulk batch b1 failed after 3 attempts: /api/events/_bulk answered 500')
  t.equal(((error as Error).cause as Error).message, '/api/events/_bulk answered 500', 'the last failure is the cause')
})

t.test('an open breaker: retried, then 503 with the refusal\'s retry-after detail', async (t) => {
  const refusal = gatewayError('BW_ERR_UPSTREAM_CIRCUIT_OPEN', 'the circuit breaker of route events is open; retry in 7 s')
  const r = rig([refusal], { retry: { retries: 1, delayMs: () => 5 } })
  const results = await r.writer.dispatch(items('a', 'b'))
  t.same(show(results), ['BW_ERR_UPSTREAM_CIRCUIT_OPEN 503', 'BW_ERR_UPSTREAM_CIRCUIT_OPEN 503'])
  t.equal(r.sent.length, 2)
  t.same(r.slept, [5])
  t.equal((results[0] as Error).message, 'bulk batch b1 failed after 2 attempts: the circuit breaker of route events is open; retry in 7 s')
  t.equal((results[0] as Error).cause, refusal)
})

t.test('a whole-batch 4xx is every item\'s answer, not retried', async (t) => {
  const r = rig([{ status: 422, headers: { 'content-type': 'application/problem+json' }, body: Buffer.from('{"title":"bad batch"}') }])
  const results = await r.writer.dispatch(items('a', 'b'))
  t.same(show(results), ['422 application/problem+json {"title":"bad batch"}', '422 application/problem+json {"title":"bad batch"}'])
  t.equal(r.sent.length, 1)
  t.same(r.attempts, ['failed:0:b1'], 'a refused batch counts as failed')

  const untyped = rig([{ status: 400, headers: { 'content-type': ['text/plain', 'text/html'] }, body: Buffer.from('no') }, { status: 413, headers: {}, body: Buffer.alloc(0) }])
  t.same(show(await untyped.writer.dispatch(items('a'))), ['400 text/plain no'], 'the first of repeated content types')
  t.same(show(await untyped.writer.dispatch(items('a'))), ['413 application/octet-stream '], 'bytes without a type')
})

t.test('a bad or oversized answer fails the batch with 502 at once: the upstream may have taken it', async (t) => {
  const tooLarge = gatewayError('BW_ERR_UPSTREAM_BAD_RESPONSE', 'http://u answered 200 with more than 10 bytes')
  const r = rig([tooLarge, json(200, [])])
  const results = await r.writer.dispatch(items('a'))
  t.same(show(results), ['BW_ERR_UPSTREAM_BAD_RESPONSE 502'])
  t.equal(r.sent.length, 1)
  t.same(r.attempts, ['failed:0:b1'])
  t.equal((results[0] as Error).message, 'bulk batch b1 failed after 1 attempt: http://u answered 200 with more than 10 bytes')

  const plain = rig([new Error('socket hang up')])
  const [error] = await plain.writer.dispatch(items('a')) as Error[]
  t.equal((error as Error & { code: string }).code, 'BW_ERR_UPSTREAM_BAD_RESPONSE', 'an error that is not ours becomes a 502')
  t.equal(plain.sent.length, 1)
  t.equal((error as Error).message, 'bulk batch b1 failed after 1 attempt: /api/events/_bulk: socket hang up')
  t.equal((((error as Error).cause as Error).cause as Error).message, 'socket hang up', 'the original error is kept')
})

t.test('each batch gets its own id; retries 0 never waits', async (t) => {
  const r = rig([json(500, {})], { retry: { retries: 0, delayMs: () => 1 } })
  await r.writer.dispatch(items('a'))
  await r.writer.dispatch(items('b'))
  t.same(r.sent.map((request) => request.headers['x-bulk-batch-id']), ['b1', 'b2'])
  t.same(r.slept, [])
  t.same(r.attempts, ['failed:0:b1', 'failed:0:b2'])
})

t.test('the defaults: a random UUID per batch, waits on a timer', async (t) => {
  // 0 ms: the default sleep runs on a real timer without making the test wait.
  const r = rig([json(503, {}), json(200, ['ok'])], { sleep: undefined, newBatchId: undefined, retry: { retries: 1, delayMs: () => 0 } })
  t.same(show(await r.writer.dispatch(items('a'))), ['200 application/json "ok"'])
  const ids = r.sent.map((request) => request.headers['x-bulk-batch-id'])
  t.equal(ids.length, 2)
  t.match(ids[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  t.equal(ids[1], ids[0])
})
