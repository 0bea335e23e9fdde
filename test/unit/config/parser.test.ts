// ConfigParser: parseConfig in a worker thread, with the same config and the same errors as on the event loop.
import t from 'tap'
import { ConfigError, ConfigParser, parseConfig } from '../../../src/config/index.js'

const VALID = `server:
  port: 8081
routes:
  - id: a
    prefix: /a
    upstream: http://127.0.0.1:9001
    timeout: \${TIMEOUT:-3s}
`
const INVALID = `routes:
  - id: a
    prefix: /a
    upstream: http://127.0.0.1:9001
    colour: blue
  - id: a
    prefix: /b
    upstream: http://127.0.0.1:9001
`

t.test('the worker answers the config parseConfig gives, frozen, with the environment it was handed', async (t) => {
  const parser = new ConfigParser()
  t.teardown(async () => { await parser.close() })
  const env = { TIMEOUT: '7s' }
  const config = await parser.parse(VALID, 'gw.yaml', env, { requireRoutes: true })
  t.same(config, parseConfig(VALID, 'gw.yaml', env, { requireRoutes: true }))
  t.equal(config.routes[0]?.timeoutMs, 7_000, 'the variable came from the environment handed over')
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.routes[0]), 'frozen as parseConfig freezes it')
  const again = await parser.parse(VALID, 'gw.yaml', {})
  t.equal(again.routes[0]?.timeoutMs, 3_000, 'one worker answers parse after parse')
})

t.test('an invalid config rejects with the ConfigError parseConfig throws, every issue in it', async (t) => {
  const parser = new ConfigParser()
  t.teardown(async () => { await parser.close() })
  let expected: unknown
  try {
    parseConfig(INVALID, 'gw.yaml', {})
  } catch (err) {
    expected = err
  }
  const rejected = await parser.parse(INVALID, 'gw.yaml', {}).catch((err: unknown) => err)
  t.ok(rejected instanceof ConfigError)
  t.equal((rejected as ConfigError).message, (expected as ConfigError).message)
  t.same((rejected as ConfigError).issues, (expected as ConfigError).issues)
  t.equal((rejected as ConfigError).issues.length, 2, 'the unknown key and the duplicate id')
})

t.test('a fault of the parser itself rejects as one, and the worker goes on', async (t) => {
  const parser = new ConfigParser()
  t.teardown(async () => { await parser.close() })
  const fault = await parser.parse(42 as unknown as string, 'gw.yaml', {}).catch((err: unknown) => err)
  t.match(fault, { message: /^the config parser failed: / })
  t.notOk(fault instanceof ConfigError)
  t.equal((await parser.parse(VALID, 'gw.yaml', {})).routes.length, 1)
})

t.test('close() rejects a parse under way, and every parse after it, without starting a worker', async (t) => {
  const parser = new ConfigParser()
  const pending = parser.parse(VALID, 'gw.yaml', {})
  await parser.close()
  await t.rejects(pending, /the config parser's worker exited/)
  await t.rejects(parser.parse(VALID, 'gw.yaml', {}), /the config parser is closed/)
  await parser.close()
  t.pass('close twice is harmless')
})
