import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import t from 'tap'
import { accessLine, accessLineWriter, withoutListeningLines } from '../../../src/server/access-log.js'

/** A real pino logger whose lines are collected, with the time fixed so two lines can be compared byte for byte. */
function collecting (options: pino.LoggerOptions = {}): { logger: FastifyBaseLogger, lines: string[] } {
  const lines: string[] = []
  const logger = pino({ timestamp: () => ',"time":42', ...options }, { write: (line: string) => { lines.push(line) } })
  return { logger, lines }
}

const LINES = [
  accessLine('catalog', 'GET', '/api/catalog/items?q=1', 200, 1.234),
  accessLine(null, 'DELETE', '/a "quoted" \\ path/é/\u0001', 503, 0),
  accessLine('r"é', 'GET', '/', 404, 12345.678),
  accessLine('gone', 'GET', '/x', 502, 3.2, 'BW_ERR_UPSTREAM_UNREACHABLE')
]

t.test('a plain pino logger gets the very line its info() writes', async (t) => {
  const fast = collecting()
  const slow = collecting()
  const write = accessLineWriter(fast.logger)
  for (const line of LINES) {
    write('id-"1\\', line)
    slow.logger.info({ requestId: 'id-"1\\', ...line }, 'request')
  }
  t.equal(fast.lines.length, LINES.length)
  t.same(fast.lines, slow.lines)
  t.match(JSON.parse(fast.lines[0] as string), { level: 30, time: 42, requestId: 'id-"1\\', route: 'catalog', status: 200, durationMs: 1.23, msg: 'request' })
  t.notOk('code' in JSON.parse(fast.lines[0] as string), 'an answer from the upstream has no code')
  t.match(JSON.parse(fast.lines[3] as string), { route: 'gone', status: 502, code: 'BW_ERR_UPSTREAM_UNREACHABLE', msg: 'request' }, 'a gateway problem\'s line has its code')
})

t.test('withoutListeningLines drops Fastify\'s listening lines only, and keeps the access lines on the fast path', async (t) => {
  const { logger, lines } = collecting({ hooks: { logMethod: withoutListeningLines } })
  const write = accessLineWriter(logger)
  logger.info('Server listening at http://127.0.0.1:8080')
  logger.info('started')
  // The fast path writes to the destination itself; logger.info (the other path) would throw here.
  logger.info = () => { throw new Error('the access line went through logger.info') }
  write('h', LINES[0] as typeof LINES[number])
  t.same(lines.map((line) => (JSON.parse(line) as { msg: string }).msg), ['started', 'request'])
})

t.test('nothing is written when info is off, and the level is read at each line', async (t) => {
  const { logger, lines } = collecting({ level: 'warn' })
  const write = accessLineWriter(logger)
  write('a', LINES[0] as typeof LINES[number])
  t.same(lines, [])
  logger.level = 'info'
  write('b', LINES[0] as typeof LINES[number])
  t.equal(lines.length, 1)
})

t.test('a logger configured otherwise (a mixin, a formatter) is left to write its own way', async (t) => {
  const mixed = collecting({ mixin: () => ({ zone: 'eu' }) })
  accessLineWriter(mixed.logger)('m', LINES[0] as typeof LINES[number])
  t.match(JSON.parse(mixed.lines[0] as string), { zone: 'eu', requestId: 'm', msg: 'request' })

  const labelled = collecting({ formatters: { level: (label) => ({ severity: label.toUpperCase() }) } })
  accessLineWriter(labelled.logger)('f', LINES[0] as typeof LINES[number])
  t.match(JSON.parse(labelled.lines[0] as string), { severity: 'INFO', requestId: 'f', msg: 'request' })

  const renamed = collecting({ messageKey: 'message' })
  accessLineWriter(renamed.logger)('k', LINES[0] as typeof LINES[number])
  t.match(JSON.parse(renamed.lines[0] as string), { message: 'request', requestId: 'k' })
})

t.test('a line without a method or url (never from node:http) still goes through the logger', async (t) => {
  const { logger, lines } = collecting()
  accessLineWriter(logger)('u', accessLine('r', undefined, undefined, 400, 1))
  t.same(JSON.parse(lines[0] as string), { level: 30, time: 42, pid: process.pid, hostname: JSON.parse(lines[0] as string).hostname, requestId: 'u', route: 'r', status: 400, durationMs: 1, msg: 'request' })
})
