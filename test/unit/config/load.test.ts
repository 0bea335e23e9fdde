// Config loading: every behaviour and every error class, with the exact `file:line:col path: message` a user sees.
/* eslint-disable no-template-curly-in-string -- ${VAR} in plain strings is the config syntax under test */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { ConfigError, loadConfigFile, parseConfig, type GatewayConfig } from '../../../src/config/index.js'

type Env = Record<string, string | undefined>

/** Test YAML is written from the line after the backtick, so line 1 is the first line shown. */
const yaml = (text: string): string => text.replace(/^\n/, '')

const load = (text: string, env: Env = {}): GatewayConfig => parseConfig(yaml(text), 'gw.yaml', env)

/** Every formatted error line of loading `text`; fails when it loads. */
const errorsOf = (text: string, env: Env = {}): string[] => {
  try {
    load(text, env)
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n')
    throw err
  }
  throw new Error('expected a ConfigError, but the config loaded')
}

const route = (fields: string): string => `
routes:
  - id: a
    prefix: /a
    upstream: http://127.0.0.1:9001
${fields}`

t.test('an empty file (or only comments) gives the built-in defaults', async (t) => {
  const expected: GatewayConfig = {
    source: 'gw.yaml',
    server: {
      host: '0.0.0.0',
      port: 8080,
      bodyLimitBytes: 1024 * 1024,
      shutdownTimeoutMs: 10_000,
      trustProxy: false,
      maxHeaders: 100,
      headersTimeoutMs: 30_000,
      sendTimeoutMs: 60_000,
      logLevel: 'info',
      accessLog: true,
      watchConfig: false,
      tls: null
    },
    management: { token: null, port: null, host: '0.0.0.0', showDetails: 'when-authorized' },
    redis: null,
    routes: [],
    autoscaler: {
      mode: 'recommend',
      port: 9464,
      intervalMs: 15_000,
      windowMs: 120_000,
      cooldownMs: 300_000,
      scaleOut: { cpu: 80, memory: 75 },
      scaleIn: { cpu: 30, memory: 50 },
      minMasters: 3,
      maxMasters: 9,
      spareNodes: [],
      backup: true,
      migration: { pipeline: 100, timeoutMs: 5000 }
    }
  }
  t.same(load(''), expected)
  t.same(load('# nothing here yet\n'), expected)
})

t.test('the shipped config/gateway.yaml loads: two routes', async (t) => {
  const file = fileURLToPath(new URL('../../../config/gateway.yaml', import.meta.url))
  const config = await loadConfigFile(file, {})
  t.equal(config.source, file)
  t.equal(config.server.port, 8080)
  t.same(config.routes.map((r) => [r.id, r.prefix, r.upstreams]), [
    ['catalog', '/api/catalog', ['http://127.0.0.1:9001']],
    ['echo', '/echo', ['http://127.0.0.1:9002']]
  ])
  t.equal((await loadConfigFile(file, { BREAKWATER_PORT: '9090' })).server.port, 9090)
})

t.test('a missing file is one clear error naming the file', async (t) => {
  const file = join(t.testdir(), 'missing.yaml')
  const error: unknown = await loadConfigFile(file, {}).catch((err: unknown) => err)
  t.ok(error instanceof ConfigError)
  t.equal((error as ConfigError).file, file)
  t.equal((error as ConfigError).message, `${file}: cannot read the config file: ENOENT: no such file or directory, open '${file}'`)
})

t.test('unknown keys are reported at the key, with the known keys', async (t) => {
  t.same(errorsOf(`
server:
  prot: 8080
`), ['gw.yaml:2:3 server.prot: unknown key (known keys: host, port, bodyLimit, shutdownTimeout, trustProxy, maxHeaders, headersTimeout, sendTimeout, logLevel, accessLog, watchConfig, tls)'])
  t.same(errorsOf(`
defaults:
  timeout: 5s
  retries: 3
`), ['gw.yaml:3:3 defaults.retries: unknown key (known keys: methods, host, upstream, rewritePrefix, timeout, headers, websocket, bodyLimit, breaker, retry, cache, upstreamTls, upstreamHttp2)'])
  t.same(errorsOf(route('    timeuot: 2s')), [
    'gw.yaml:5:5 routes[0].timeuot: unknown key (known keys: id, prefix, methods, host, upstream, rewritePrefix, timeout, headers, websocket, bodyLimit, breaker, retry, cache, upstreamTls, upstreamHttp2, bulk)'
  ])
  t.same(errorsOf(`
servers:
  port: 8080
`), ['gw.yaml:1:1 servers: unknown key (known keys: server, management, redis, defaults, routes, autoscaler)'])
})

t.test('a value of the wrong type names what was expected', async (t) => {
  t.same(errorsOf(`
server:
  port: http
  trustProxy: "yes"
  maxHeaders: 1.5
routes:
  id: a
`), [
    'gw.yaml:2:9 server.port: expected a port number from 0 to 65535, got "http"',
    'gw.yaml:3:15 server.trustProxy: expected a boolean, got "yes"',
    'gw.yaml:4:15 server.maxHeaders: expected an integer, got 1.5',
    'gw.yaml:6:3 routes: expected an array, got {"id":"a"}'
  ])
  t.same(errorsOf(route('    headers: {x-tenant: 42}\n    websocket: 1')), [
    'gw.yaml:5:25 routes[0].headers.x-tenant: expected a string, got 42',
    'gw.yaml:6:16 routes[0].websocket: expected a boolean, got 1'
  ])
  t.same(errorsOf('just text\n'), ['gw.yaml:1:1 expected an object, got "just text"'])
})

t.test('a method outside the list is an enum error at the item', async (t) => {
  t.same(errorsOf(route('    methods: [GET, FETCH]')), [
    'gw.yaml:5:20 routes[0].methods[1]: expected one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, got "FETCH"'
  ])
  t.same(errorsOf(route('    methods: [get]')), [
    'gw.yaml:5:15 routes[0].methods[0]: expected one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, got "get"'
  ], 'methods are upper case')
  t.same(errorsOf(route('    methods: []')), ['gw.yaml:5:14 routes[0].methods: expected at least 1 item, got []'])
  t.same(errorsOf(route('    methods: [GET, GET]')), ['gw.yaml:5:14 routes[0].methods: expected no duplicates, got ["GET","GET"]'])
  t.same(errorsOf(`
server:
  logLevel: verbose
`), ['gw.yaml:2:13 server.logLevel: expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"'])
})

t.test('durations and sizes must carry a unit and be above zero', async (t) => {
  t.same(errorsOf(route('    timeout: fast\n    bodyLimit: 1tb')), [
    'gw.yaml:5:14 routes[0].timeout: expected a duration like 5s, got "fast"',
    'gw.yaml:6:16 routes[0].bodyLimit: expected a size like 1mb, got "1tb"'
  ])
  t.same(errorsOf(`
server:
  shutdownTimeout: 10
  headersTimeout: 0s
  bodyLimit: 1.5mb
`), [
    'gw.yaml:2:20 server.shutdownTimeout: expected a duration like 5s, got 10',
    'gw.yaml:3:19 server.headersTimeout: expected a duration like 5s, got "0s"',
    'gw.yaml:4:14 server.bodyLimit: expected a size like 1mb, got "1.5mb"'
  ])
})

t.test('the port is 0 to 65535', async (t) => {
  t.same(errorsOf('server:\n  port: 65536\n'), ['gw.yaml:2:9 server.port: expected a port number from 0 to 65535, got 65536'])
  t.same(errorsOf('server:\n  port: -1\n'), ['gw.yaml:2:9 server.port: expected a port number from 0 to 65535, got -1'])
  t.equal(load('server:\n  port: 0\n').server.port, 0)
  t.equal(load('server:\n  port: 65535\n').server.port, 65535)
  t.same(errorsOf('server:\n  maxHeaders: 0\n'), ['gw.yaml:2:15 server.maxHeaders: expected a number >= 1, got 0'])
})

t.test('route ids are slugs: the metric label and breaker name', async (t) => {
  t.same(errorsOf(`
routes:
  - id: Catalog
    prefix: /a
    upstream: http://127.0.0.1:9001
  - id: -b
    prefix: /b
    upstream: http://127.0.0.1:9001
`), [
    'gw.yaml:2:9 routes[0].id: expected an id like catalog (lower case letters, digits, - and _), got "Catalog"',
    'gw.yaml:5:9 routes[1].id: expected an id like catalog (lower case letters, digits, - and _), got "-b"'
  ])
  t.same(errorsOf(`
routes:
  - upstream: http://127.0.0.1:9001
`), [
    'gw.yaml:2:5 routes[0].id: missing required key',
    'gw.yaml:2:5 routes[0].prefix: missing required key'
  ])
})

t.test('duplicate route ids are reported at the second one', async (t) => {
  t.same(errorsOf(`
routes:
  - id: catalog
    prefix: /a
    upstream: http://127.0.0.1:9001
  - id: catalog
    prefix: /b
    upstream: http://127.0.0.1:9001
`), ['gw.yaml:5:9 routes[1].id: duplicate route id "catalog" (also routes[0])'])
})

const twoRoutes = (first: string, second: string): string => `
routes:
  - id: one
    upstream: http://127.0.0.1:9001
${first}
  - id: two
    upstream: http://127.0.0.1:9001
${second}
`

t.test('two routes with the same prefix, host and methods are an error', async (t) => {
  t.same(errorsOf(twoRoutes('    prefix: /api', '    prefix: /api')), [
    'gw.yaml:7:13 routes[1].prefix: routes[0] already matches the same prefix, host and methods'
  ])
  t.same(errorsOf(twoRoutes('    prefix: /api/', '    prefix: /api')), [
    'gw.yaml:7:13 routes[1].prefix: routes[0] already matches the same prefix, host and methods'
  ], '/api/ and /api are one prefix')
  t.same(errorsOf(twoRoutes('    prefix: /api\n    methods: [GET, HEAD]\n    host: API.example.com', '    prefix: /api\n    methods: [HEAD, GET]\n    host: api.example.com')), [
    'gw.yaml:9:13 routes[1].prefix: routes[0] already matches the same prefix, host and methods'
  ], 'method order and host case do not matter')
  t.same(errorsOf(`
defaults:
  methods: [GET]
${twoRoutes('    prefix: /api', '    prefix: /api\n    methods: [GET]')}`), [
    'gw.yaml:10:13 routes[1].prefix: routes[0] already matches the same prefix, host and methods'
  ], 'methods inherited from defaults count')
})

t.test('the same prefix with other methods or another host is fine', async (t) => {
  const methods = load(twoRoutes('    prefix: /api\n    methods: [GET]', '    prefix: /api\n    methods: [POST]'))
  t.same(methods.routes.map((r) => r.methods), [['GET'], ['POST']])
  const anyMethod = load(twoRoutes('    prefix: /api', '    prefix: /api\n    methods: [GET]'))
  t.same(anyMethod.routes.map((r) => r.methods), [null, ['GET']])
  const hosts = load(twoRoutes('    prefix: /api\n    host: a.example.com', '    prefix: /api\n    host: b.example.com'))
  t.same(hosts.routes.map((r) => r.host), ['a.example.com', 'b.example.com'])
  const anyHost = load(twoRoutes('    prefix: /api', '    prefix: /api\n    host: a.example.com'))
  t.same(anyHost.routes.map((r) => r.host), [null, 'a.example.com'])
})

t.test('upstreams are http(s) URLs', async (t) => {
  t.same(errorsOf(`
routes:
  - id: a
    prefix: /a
    upstream: ftp://files.example.com
  - id: b
    prefix: /b
    upstream:
      - http://127.0.0.1:9001
      - localhost:9002
      - not a url
`), [
    'gw.yaml:4:15 routes[0].upstream: expected an http or https URL, got "ftp://files.example.com"',
    'gw.yaml:9:9 routes[1].upstream[1]: expected an http or https URL, got "localhost:9002"',
    'gw.yaml:10:9 routes[1].upstream[2]: expected an http(s) URL like http://127.0.0.1:9001, got "not a url"'
  ])
  t.same(errorsOf(route('    upstream: 9001').replace('    upstream: http://127.0.0.1:9001\n', '')), [
    'gw.yaml:4:15 routes[0].upstream: expected an http(s) URL or a list of them, got 9001'
  ])
  t.same(errorsOf('defaults:\n  upstream: ws://127.0.0.1:9001\n'), [
    'gw.yaml:2:13 defaults.upstream: expected an http or https URL, got "ws://127.0.0.1:9001"'
  ])
})

t.test('an upstream is an origin: no path, query or credentials', async (t) => {
  const message = 'expected an origin like http://host:port, without path, query or credentials (use rewritePrefix for paths)'
  t.same(errorsOf(`
defaults:
  upstream: http://127.0.0.1:9001/api
routes:
  - id: a
    prefix: /a
    upstream: http://user:secret@127.0.0.1:9001
  - id: b
    prefix: /b
    upstream: [http://127.0.0.1:9001?x=1]
`), [
    `gw.yaml:2:13 defaults.upstream: ${message}, got "http://127.0.0.1:9001/api"`,
    `gw.yaml:6:15 routes[0].upstream: ${message}, got "http://user:secret@127.0.0.1:9001"`,
    `gw.yaml:9:16 routes[1].upstream[0]: ${message}, got "http://127.0.0.1:9001?x=1"`
  ])
  t.same(load(route('').replace('9001', '9001/')).routes[0]?.upstreams, ['http://127.0.0.1:9001'], 'a trailing / is fine')
})

t.test('a route needs an upstream, on itself or under defaults', async (t) => {
  t.same(errorsOf(`
routes:
  - id: a
    prefix: /a
  - id: b
    prefix: /b
    upstream: http://127.0.0.1:9001
`), ['gw.yaml:2:5 routes[0]: missing required key "upstream" (set it on the route or under defaults)'])
  const config = load(`
defaults:
  upstream: [http://127.0.0.1:9001, https://127.0.0.1:9443]
routes:
  - id: a
    prefix: /a
`)
  t.same(config.routes[0]?.upstreams, ['http://127.0.0.1:9001', 'https://127.0.0.1:9443'])
})

t.test('routes under /actuator are refused; /actuatorx is not under it', async (t) => {
  for (const prefix of ['/actuator', '/actuator/', '/actuator/health']) {
    t.same(errorsOf(`
routes:
  - id: a
    prefix: ${prefix}
    upstream: http://127.0.0.1:9001
`), [`gw.yaml:3:13 routes[0].prefix: /actuator is reserved for the gateway's own endpoints, got "${prefix}"`], prefix)
  }
  t.equal(load(route('').replace('/a\n', '/actuatorx\n')).routes[0]?.prefix, '/actuatorx')
})

t.test('a prefix is a plain path: a leading /, no empty or dot segments, no query', async (t) => {
  const plain = 'expected a plain path prefix like /api/catalog (no empty, . or .. segments, no ? or #)'
  for (const prefix of ['/a/./b', '/a/../b', '/a//b', '/a/%2E%2e/b', '/..', '/a?x=1', '/a#top']) {
    t.same(errorsOf(route('').replace('/a\n', `"${prefix}"\n`)), [`gw.yaml:3:13 routes[0].prefix: ${plain}, got "${prefix}"`], prefix)
  }
  t.same(errorsOf(route('').replace('/a\n', 'api\n')), ['gw.yaml:3:13 routes[0].prefix: expected a path starting with /, got "api"'])
  t.same(load(route('').replace('/a\n', '/a..b/c./\n')).routes[0]?.prefix, '/a..b/c.', 'dots inside a segment are fine')
  t.same(load(route('').replace('/a\n', '/\n')).routes[0]?.prefix, '/')
})

t.test('rewritePrefix is "" or a plain path', async (t) => {
  const message = 'expected "" or a plain path like /catalog'
  t.same(errorsOf(route('    rewritePrefix: /x/../y')), [`gw.yaml:5:20 routes[0].rewritePrefix: ${message}, got "/x/../y"`])
  t.same(errorsOf(route('    rewritePrefix: catalog')), [`gw.yaml:5:20 routes[0].rewritePrefix: ${message}, got "catalog"`])
  t.same(errorsOf('defaults:\n  rewritePrefix: //x\n'), [`gw.yaml:2:18 defaults.rewritePrefix: ${message}, got "//x"`])
  t.equal(load(route('    rewritePrefix: ""')).routes[0]?.rewritePrefix, '', '"" strips the prefix')
  t.equal(load(route('    rewritePrefix: /')).routes[0]?.rewritePrefix, '', '/ is the same as ""')
  t.equal(load(route('    rewritePrefix: /catalog/')).routes[0]?.rewritePrefix, '/catalog')
  t.equal(load(route('')).routes[0]?.rewritePrefix, null)
})

t.test('added headers: a token name, not one the gateway sets, a value without CR/LF', async (t) => {
  t.same(errorsOf(route(`    headers:
      x tenant: acme
      Host: example.com
      connection: close
      Transfer-Encoding: chunked
      x-ok: "a\\nb"`)), [
    'gw.yaml:6:7 routes[0].headers.x tenant: expected a header name (an RFC 9110 token), got "x tenant"',
    'gw.yaml:7:7 routes[0].headers.Host: the gateway sets Host itself; it cannot be added',
    'gw.yaml:8:7 routes[0].headers.connection: the gateway sets connection itself; it cannot be added',
    'gw.yaml:9:7 routes[0].headers.Transfer-Encoding: the gateway sets Transfer-Encoding itself; it cannot be added',
    'gw.yaml:10:13 routes[0].headers.x-ok: expected a header value without CR, LF or NUL'
  ])
  t.same(errorsOf('defaults:\n  headers: {keep-alive: "5"}\n'), [
    'gw.yaml:2:13 defaults.headers.keep-alive: the gateway sets keep-alive itself; it cannot be added'
  ])
})

t.test('host is a name without a port', async (t) => {
  t.same(errorsOf(route('    host: api.example.com:8080')), [
    'gw.yaml:5:11 routes[0].host: expected a host name without port, like api.example.com, got "api.example.com:8080"'
  ])
})

t.test('a YAML syntax error is reported with its position, and nothing after it', async (t) => {
  t.same(errorsOf(`
server:
  bogus: 1
  port: [8080
routes: []
`), ['gw.yaml:4:1 YAML: Flow sequence in block collection must be sufficiently indented and end with a ]'])
  t.same(errorsOf('server:\n\tport: 8080\n'), ['gw.yaml:2:1 bad indentation: a tab; YAML indents with spaces only'])
})

t.test('an indentation mistake is reported once, at the line that is wrong, in plain words', async (t) => {
  // Deeper than a key that has a value: the yaml library points at that value (2:9), the mistake is on the next line.
  t.same(errorsOf(`
server:
  port: 8080
    host: 0.0.0.0
`), ['gw.yaml:3:5 bad indentation: "host" is indented under "port" (line 2), which has a value already; line it up with it at column 3'])
  // Between two levels of a route: the columns it could mean, nearest first.
  t.same(errorsOf(`
routes:
  - id: a
    prefix: /a
   upstream: http://127.0.0.1:1
`), ['gw.yaml:4:4 bad indentation: "upstream" at column 4 lines up with nothing above it; expected column 5 as "prefix" (line 3), or column 1 as "routes" (line 1)'])
  // Comments and blank lines in between are skipped.
  t.same(errorsOf(`
server:
    port: 8080

  # the host
  host: x
`), ['gw.yaml:5:3 bad indentation: "host" at column 3 lines up with nothing above it; expected column 5 as "port" (line 2), or column 1 as "server" (line 1)'])
  t.same(errorsOf(`
routes:
  - id: a
    methods:
      - GET
     - HEAD
`), ['gw.yaml:5:6 bad indentation: "- HEAD" at column 6 lines up with nothing above it; expected column 7 as "- GET" (line 4), or column 5 as "methods" (line 3), or column 3 as "id" (line 2)'])
})

t.test('a key and a value on one line with nothing under it keeps the YAML library\'s message', async (t) => {
  t.same(errorsOf('server:\n  port: host: 1\n'), ['gw.yaml:2:9 YAML: Nested mappings are not allowed in compact mappings'])
})

t.test('a config that must route traffic needs a route: an error at routes, or at the top without it', async (t) => {
  const strict = (text: string): string[] => {
    try {
      parseConfig(yaml(text), 'gw.yaml', {}, { requireRoutes: true })
    } catch (err) {
      if (err instanceof ConfigError) return err.message.split('\n')
      throw err
    }
    return []
  }
  const why = 'routes: expected at least one route: without one every request is answered 404'
  t.same(strict('server:\n  port: 8080\nroutes: []\n'), [`gw.yaml:3:9 ${why}`])
  t.same(strict('server:\n  port: 8080\n'), [`gw.yaml:1:1 ${why}`])
  t.same(strict(''), [`gw.yaml:1:1 ${why}`], 'an empty file too')
  t.same(strict(route('')), [], 'one route is enough')
  t.same(load('routes: []\n').routes, [], 'by default (the autoscaler\'s config) no route is needed')
})

t.test('a key written twice in one map is an error at the second', async (t) => {
  t.same(errorsOf(`
server:
  port: 8080
  host: 127.0.0.1
  port: 9090
`), ['gw.yaml:4:3 YAML: Map keys must be unique'])
})

t.test('${VAR} and ${VAR:-default} are substituted in values', async (t) => {
  const config = load(`
# \${IN_A_COMMENT} is left alone
server:
  host: \${HOST}
  port: \${PORT:-8080}
  logLevel: "\${LEVEL:-warn}"
routes:
  - id: \${ID:-catalog}
    prefix: /api/\${NAME}
    upstream:
      - http://\${UPSTREAM_HOST}:9001
      - \${SECOND:-http://127.0.0.1:9002}
    headers:
      x-tenant: "\${TENANT}-\${NAME}"
`, { HOST: '127.0.0.1', NAME: 'items', UPSTREAM_HOST: '10.0.0.1', TENANT: 'acme', LEVEL: '' })
  t.equal(config.server.host, '127.0.0.1')
  t.equal(config.server.port, 8080, 'a plain scalar is read again: the default becomes a number')
  t.equal(config.server.logLevel, 'warn', 'an empty variable takes the default')
  t.equal(config.routes[0]?.id, 'catalog')
  t.equal(config.routes[0]?.prefix, '/api/items')
  t.same(config.routes[0]?.upstreams, ['http://10.0.0.1:9001', 'http://127.0.0.1:9002'], 'in list items')
  t.same(config.routes[0]?.headers, { 'x-tenant': 'acme-items' })

  t.equal(load('server:\n  port: ${PORT:-8080}\n', { PORT: '9000' }).server.port, 9000, 'a set variable wins over the default')
  t.equal(load('server:\n  host: "${H:-a:b}"\n').server.host, 'a:b', 'a default may hold a colon')
})

t.test('${VAR} is not substituted in keys', async (t) => {
  t.same(errorsOf(route('    headers:\n      ${NAME}: v'), { NAME: 'x-name' }), [
    'gw.yaml:6:7 routes[0].headers.${NAME}: expected a header name (an RFC 9110 token), got "${NAME}"'
  ])
})

t.test('an unset variable without a default is an error at the variable, and only that', async (t) => {
  t.same(errorsOf(`
server:
  port: \${PORT}
  host: "0.0.0.0\${SUFFIX}"
routes:
  - id: a
    prefix: /a
    upstream:
      - http://127.0.0.1:9001
      - http://\${UPSTREAM_HOST}:9002
`, { SUFFIX: '' }), [
    'gw.yaml:2:9 server.port: environment variable PORT is not set (use ${PORT:-default} for a default)',
    'gw.yaml:3:17 server.host: environment variable SUFFIX is not set (use ${SUFFIX:-default} for a default)',
    'gw.yaml:9:16 routes[0].upstream[1]: environment variable UPSTREAM_HOST is not set (use ${UPSTREAM_HOST:-default} for a default)'
  ])
})

t.test('every error is reported at once, sorted by line', async (t) => {
  let error: unknown
  try {
    load(`
routes:
  - id: a
    prefix: /a
    upstream: http://127.0.0.1:9001
  - id: a
    prefix: /actuator
    upstream: http://127.0.0.1:9001
    timeout: soon
server:
  port: 99999
  colour: blue
`)
  } catch (err) {
    error = err
  }
  t.ok(error instanceof ConfigError)
  const configError = error as ConfigError
  t.equal(configError.file, 'gw.yaml')
  t.equal(configError.message, [
    'gw.yaml:5:9 routes[1].id: duplicate route id "a" (also routes[0])',
    'gw.yaml:6:13 routes[1].prefix: /actuator is reserved for the gateway\'s own endpoints, got "/actuator"',
    'gw.yaml:8:14 routes[1].timeout: expected a duration like 5s, got "soon"',
    'gw.yaml:10:9 server.port: expected a port number from 0 to 65535, got 99999',
    'gw.yaml:11:3 server.colour: unknown key (known keys: host, port, bodyLimit, shutdownTimeout, trustProxy, maxHeaders, headersTimeout, sendTimeout, logLevel, accessLog, watchConfig, tls)'
  ].join('\n'))
  t.same(configError.issues.map((issue) => [issue.line, issue.col, issue.path]), [
    [5, 9, 'routes[1].id'], [6, 13, 'routes[1].prefix'], [8, 14, 'routes[1].timeout'], [10, 9, 'server.port'], [11, 3, 'server.colour']
  ])
})

t.test('defaults apply to routes that leave a key out; the route wins', async (t) => {
  const config = load(`
server:
  bodyLimit: 2mb
defaults:
  methods: [GET, HEAD]
  host: API.Example.com
  upstream: http://127.0.0.1:9001
  timeout: 250ms
  bodyLimit: 512kb
  websocket: true
  rewritePrefix: /v1
  headers: {x-tenant: acme, X-Env: prod}
routes:
  - id: inherits
    prefix: /a
  - id: overrides
    prefix: /b
    methods: [POST]
    host: Other.Example.com
    upstream: [http://127.0.0.1:9002]
    timeout: 1m
    bodyLimit: 1gb
    websocket: false
    rewritePrefix: ""
    headers: {x-env: test, x-route: b}
`)
  const [inherits, overrides] = config.routes
  // The breaker and retry blocks have a test of their own below.
  t.match(inherits, {
    id: 'inherits',
    prefix: '/a',
    methods: ['GET', 'HEAD'],
    host: 'api.example.com',
    upstreams: ['http://127.0.0.1:9001'],
    rewritePrefix: '/v1',
    timeoutMs: 250,
    headers: { 'x-tenant': 'acme', 'x-env': 'prod' },
    websocket: true,
    bodyLimitBytes: 512 * 1024
  })
  t.match(overrides, {
    id: 'overrides',
    prefix: '/b',
    methods: ['POST'],
    host: 'other.example.com',
    upstreams: ['http://127.0.0.1:9002'],
    rewritePrefix: '',
    timeoutMs: 60_000,
    headers: { 'x-tenant': 'acme', 'x-env': 'test', 'x-route': 'b' },
    websocket: false,
    bodyLimitBytes: 1024 ** 3
  })
})

t.test('without defaults a route gets the built-in timeout and the server body limit', async (t) => {
  const config = load(`
server:
  bodyLimit: 2mb
${route('')}`)
  t.match(config.routes[0], {
    id: 'a',
    prefix: '/a',
    methods: null,
    host: null,
    upstreams: ['http://127.0.0.1:9001'],
    rewritePrefix: null,
    timeoutMs: 5000,
    headers: {},
    websocket: false,
    bodyLimitBytes: 2 * 1024 * 1024
  })
})

t.test('durations and sizes become milliseconds and bytes', async (t) => {
  const config = load(`
server:
  shutdownTimeout: 1h
  headersTimeout: 5s
  sendTimeout: 2m
  bodyLimit: 1gb
routes:
  - id: a
    prefix: /a
    upstream: http://127.0.0.1:9001
    timeout: 250ms
    bodyLimit: 512kb
  - id: b
    prefix: /b
    upstream: http://127.0.0.1:9001
    timeout: 1m
    bodyLimit: 1mb
`)
  t.equal(config.server.shutdownTimeoutMs, 3_600_000)
  t.equal(config.server.headersTimeoutMs, 5000)
  t.equal(config.server.sendTimeoutMs, 120_000)
  t.equal(config.server.bodyLimitBytes, 1024 ** 3)
  t.same(config.routes.map((r) => [r.timeoutMs, r.bodyLimitBytes]), [[250, 512 * 1024], [60_000, 1024 * 1024]])
})

t.test('the loaded config is deep-frozen', async (t) => {
  const config = load(`
defaults:
  methods: [GET]
  headers: {x-a: b}
${route('')}`)
  const frozen = [config, config.server, config.routes, config.routes[0], config.routes[0]?.methods, config.routes[0]?.upstreams, config.routes[0]?.headers]
  for (const value of frozen) t.ok(Object.isFrozen(value))
  t.throws(() => { (config.server as { port: number }).port = 1 }, TypeError)
  t.throws(() => { (config.routes as unknown[]).push({}) }, TypeError)
  t.throws(() => { (config.routes[0]?.headers as Record<string, string>)['x-b'] = 'c' }, TypeError)
})

t.test('breaker and retry: built-in defaults, defaults merged key by key, the route wins', async (t) => {
  const config = load(`
defaults:
  upstream: http://127.0.0.1:9001
  breaker: {failureThreshold: 3, recoveryTimeout: 10s, fallback: {status: 503, body: '{"error":"down"}'}}
  retry: {retries: 1}
routes:
  - id: plain
    prefix: /a
  - id: tuned
    prefix: /b
    breaker:
      mode: observe
      failureRateThreshold: 50
      slidingWindow: 1m
      minimumCalls: 10
      slowCallThreshold: 2s
      slowCallRateThreshold: 80
      recoveryBackoff: {multiplier: 2, max: 5m}
      halfOpenCalls: 3
      failureStatuses: [500, 503]
    retry: {backoff: 50ms, maxBackoff: 1s, on: [503, connect]}
`)
  const [plain, tuned] = config.routes
  t.same(plain?.breaker, {
    mode: 'enforce',
    failureThreshold: 3,
    failureRateThreshold: null,
    slidingWindowMs: 10_000,
    minimumCalls: 20,
    slowCallThresholdMs: 60_000,
    slowCallRateThreshold: 100,
    recoveryTimeoutMs: 10_000,
    recoveryBackoff: null,
    halfOpenCalls: 1,
    failureStatuses: [500, 502, 503, 504],
    fallback: { status: 503, contentType: 'application/json', body: '{"error":"down"}' }
  })
  t.same(plain?.retry, { retries: 1, backoffMs: 100, maxBackoffMs: 2_000, statuses: [502, 503, 504], onConnect: true, onTimeout: true })
  t.same(tuned?.breaker, {
    mode: 'observe',
    failureThreshold: 3,
    failureRateThreshold: 50,
    slidingWindowMs: 60_000,
    minimumCalls: 10,
    slowCallThresholdMs: 2_000,
    slowCallRateThreshold: 80,
    recoveryTimeoutMs: 10_000,
    recoveryBackoff: { multiplier: 2, maxMs: 300_000 },
    halfOpenCalls: 3,
    failureStatuses: [500, 503],
    fallback: { status: 503, contentType: 'application/json', body: '{"error":"down"}' }
  })
  t.same(tuned?.retry, { retries: 1, backoffMs: 50, maxBackoffMs: 1_000, statuses: [503], onConnect: true, onTimeout: false })
})

t.test('a route without retry anywhere does not retry', async (t) => {
  const config = load(route(''))
  t.equal(config.routes[0]?.retry.retries, 0)
})

t.test('breaker, retry and management values are checked', async (t) => {
  t.same(errorsOf(`
management:
  port: 70000
  extra: 1
routes:
  - id: a
    prefix: /a
    upstream: http://127.0.0.1:9001
    breaker:
      mode: strict
      failureRateThreshold: 0
      failureStatuses: [404]
      halfOpenCalls: 0
    retry:
      retries: 11
      on: [retry]
`), [
    'gw.yaml:2:9 management.port: expected a port number from 0 to 65535, got 70000',
    'gw.yaml:3:3 management.extra: unknown key (known keys: token, port, host, health)',
    'gw.yaml:9:13 routes[0].breaker.mode: expected one of enforce, observe, off, got "strict"',
    'gw.yaml:10:29 routes[0].breaker.failureRateThreshold: expected a percentage above 0, at most 100, got 0',
    'gw.yaml:11:25 routes[0].breaker.failureStatuses[0]: expected a 5xx status, got 404',
    'gw.yaml:12:22 routes[0].breaker.halfOpenCalls: expected a number >= 1, got 0',
    'gw.yaml:14:16 routes[0].retry.retries: expected a number <= 10, got 11',
    'gw.yaml:15:12 routes[0].retry.on[0]: expected a 5xx status, connect or timeout, got "retry"'
  ])
})

t.test('management: a token from the environment; empty means none', async (t) => {
  const text = `
management:
  token: \${BREAKWATER_ADMIN_TOKEN:-}
  port: 9090
`
  t.same(parseConfig(text, 'gw.yaml', { BREAKWATER_ADMIN_TOKEN: 's3cret' }).management, { token: 's3cret', port: 9090, host: '0.0.0.0', showDetails: 'when-authorized' })
  t.same(parseConfig(text, 'gw.yaml', {}).management, { token: null, port: 9090, host: '0.0.0.0', showDetails: 'when-authorized' })
})

t.test('management.health.showDetails: Spring\'s three values, when-authorized by default', async (t) => {
  for (const value of ['never', 'when-authorized', 'always']) {
    t.equal(load(`management:\n  health:\n    showDetails: ${value}\n${route('')}`).management.showDetails, value)
  }
  t.same(errorsOf(`management:\n  health:\n    showDetails: yes\n${route('')}`), [
    'gw.yaml:3:18 management.health.showDetails: expected one of never, when-authorized, always, got "yes"'
  ])
})

t.test('redis: a standalone URL or cluster nodes, with defaults; BREAKWATER_REDIS_URL when the file has none', async (t) => {
  t.same(load('redis:\n  url: redis://:secret@127.0.0.1:6380\n').redis, {
    url: 'redis://:secret@127.0.0.1:6380', cluster: null, keyPrefix: 'bw:', connectTimeoutMs: 1000, commandTimeoutMs: 100
  })
  t.same(load('redis:\n  cluster: [redis://127.0.0.1:7001, redis://127.0.0.1:7002]\n  keyPrefix: "gw:"\n  commandTimeout: 50ms\n').redis, {
    url: null, cluster: ['redis://127.0.0.1:7001', 'redis://127.0.0.1:7002'], keyPrefix: 'gw:', connectTimeoutMs: 1000, commandTimeoutMs: 50
  })
  t.match(load('', { BREAKWATER_REDIS_URL: 'rediss://cache.internal:6379' }).redis, { url: 'rediss://cache.internal:6379', cluster: null })
  t.equal(load('', { BREAKWATER_REDIS_URL: '' }).redis, null, 'an empty variable is unset')
  t.match(load('redis:\n  url: redis://127.0.0.1:1\n', { BREAKWATER_REDIS_URL: 'redis://elsewhere:6379' }).redis, { url: 'redis://127.0.0.1:1' }, 'the file wins')
})

t.test('redis: errors name the key', async (t) => {
  t.same(errorsOf('redis:\n  keyPrefix: x\n'), ['gw.yaml:2:3 redis: expected exactly one of url (standalone) and cluster (startup nodes)'])
  t.same(errorsOf('redis:\n  url: redis://a:1\n  cluster: [redis://b:1]\n'), ['gw.yaml:2:3 redis: expected exactly one of url (standalone) and cluster (startup nodes)'])
  t.same(errorsOf('redis:\n  url: http://127.0.0.1:6379\n'), ['gw.yaml:2:8 redis.url: expected a redis:// or rediss:// URL, got "http://127.0.0.1:6379"'])
  t.same(errorsOf('redis:\n  cluster: [redis://a:1, nonsense]\n'), ['gw.yaml:2:26 redis.cluster[1]: expected a redis:// or rediss:// URL, got "nonsense"'])
  t.same(errorsOf('redis:\n  url: redis://a:1\n  keyPrefix: "{bw}:"\n'), ['gw.yaml:3:14 redis.keyPrefix: expected a prefix without { or }, got "{bw}:"'])
  t.same(errorsOf('', { BREAKWATER_REDIS_URL: 'localhost:6379' }), ['gw.yaml: BREAKWATER_REDIS_URL: expected a redis:// or rediss:// URL, got "localhost:6379"'])
})

t.test('cache: off unless set; defaults merged key by key; the route wins', async (t) => {
  t.equal(load(route('')).routes[0]?.cache, null)
  t.same(load(route('    cache: {}')).routes[0]?.cache, {
    ttlMs: null, maxObjectSizeBytes: 1024 * 1024, staleWhileRevalidateMs: 0, staleIfErrorMs: 0, vary: [], maxVariants: 16, targetedField: 'cdn-cache-control', memory: null
  })
  const config = load(`
redis:
  url: redis://127.0.0.1:6380
defaults:
  cache: {ttl: 60s, staleIfError: 5m, vary: [Accept-Language]}
routes:
  - id: a
    prefix: /a
    upstream: http://127.0.0.1:9001
    cache: {ttl: 10s, maxObjectSize: 64kb, staleWhileRevalidate: 30s, maxVariants: 4, targetedField: Breakwater-Cache-Control, memory: {maxEntries: 5}}
  - id: b
    prefix: /b
    upstream: http://127.0.0.1:9001
`)
  t.same(config.routes.map((r) => r.cache), [
    { ttlMs: 10_000, maxObjectSizeBytes: 64 * 1024, staleWhileRevalidateMs: 30_000, staleIfErrorMs: 300_000, vary: ['accept-language'], maxVariants: 4, targetedField: 'breakwater-cache-control', memory: { maxEntries: 5, ttlMs: 1000 } },
    { ttlMs: 60_000, maxObjectSizeBytes: 1024 * 1024, staleWhileRevalidateMs: 0, staleIfErrorMs: 300_000, vary: ['accept-language'], maxVariants: 16, targetedField: 'cdn-cache-control', memory: null }
  ])
})

t.test('cache: errors name the key', async (t) => {
  t.same(errorsOf(route('    cache: {ttl: soon, vary: [bad header]}')), [
    'gw.yaml:5:18 routes[0].cache.ttl: expected a duration like 5s, got "soon"',
    'gw.yaml:5:31 routes[0].cache.vary[0]: expected a header name (an RFC 9110 token), got "bad header"'
  ])
  t.same(errorsOf(route('    cache: {memory: {maxEntries: 10}}')), [
    'gw.yaml:5:13 routes[0].cache.memory: an in-process tier needs a redis: block to sit in front of'
  ])
  t.same(errorsOf(route('    cache: {tll: 1s}')), [
    'gw.yaml:5:13 routes[0].cache.tll: unknown key (known keys: ttl, maxObjectSize, staleWhileRevalidate, staleIfError, vary, maxVariants, targetedField, memory)'
  ])
  t.same(errorsOf(route('    cache: {targetedField: "CDN Cache"}')), [
    'gw.yaml:5:28 routes[0].cache.targetedField: expected a header field name like Breakwater-Cache-Control, got "CDN Cache"'
  ])
  t.same(errorsOf(route('    cache: {maxVariants: 0}')), ['gw.yaml:5:26 routes[0].cache.maxVariants: expected a number >= 1, got 0'])
  t.same(errorsOf(route('    cache: {maxVariants: 2.5}')), ['gw.yaml:5:26 routes[0].cache.maxVariants: expected an integer, got 2.5'])
})

const bulkRoute = (fields: string): string => `
routes:
  - id: events
    prefix: /api/events
    upstream: http://127.0.0.1:9002
    bulk:
${fields}`

t.test('bulk: off unless set; every key but path has a default', async (t) => {
  t.equal(load(route('')).routes[0]?.bulk, null)
  const bulk = load(bulkRoute('      path: /api/events/_bulk')).routes[0]?.bulk
  t.same(bulk, {
    path: '/api/events/_bulk',
    batchSize: 1000,
    maxBatchBytes: 5 * 1024 * 1024,
    maxWaitMs: 50,
    format: 'json-array',
    mode: 'sync',
    concurrency: 2,
    maxPending: 100_000,
    retry: { retries: 5, backoffMs: 100, maxBackoffMs: 5000 },
    claimAfterMs: 30_000
  })
  t.ok(Object.isFrozen(bulk?.retry), 'frozen with the rest of the config')
})

t.test('bulk: every key set, as the issue writes it', async (t) => {
  const config = load(`
routes:
  - id: events
    prefix: /api/events
    methods: [POST]
    upstream: http://127.0.0.1:9002
    bulk:
      path: /api/events/_bulk?refresh=false
      batchSize: 200
      maxBatchBytes: 512kb
      maxWait: 2s
      format: ndjson
      mode: async
      concurrency: 64
      maxPending: 200
      retry: {retries: 0, backoff: 1s, maxBackoff: 1s}
      claimAfter: 2m
  - id: other
    prefix: /other
    methods: [GET, POST]
    upstream: http://127.0.0.1:9002
    bulk: {path: /other/_bulk, maxWait: 0ms, batchSize: 100000, retry: {retries: 20}}
`)
  t.same(config.routes[0]?.bulk, {
    path: '/api/events/_bulk?refresh=false',
    batchSize: 200,
    maxBatchBytes: 512 * 1024,
    maxWaitMs: 2000,
    format: 'ndjson',
    mode: 'async',
    concurrency: 64,
    maxPending: 200,
    retry: { retries: 0, backoffMs: 1000, maxBackoffMs: 1000 },
    claimAfterMs: 120_000
  }, 'maxPending may equal batchSize; backoff may equal maxBackoff')
  t.match(config.routes[1]?.bulk, { maxWaitMs: 0, batchSize: 100_000, maxPending: 100_000, retry: { retries: 20, backoffMs: 100, maxBackoffMs: 5000 } })
  t.equal(config.routes[1]?.rewritePrefix, null, 'bulk leaves the route\'s other keys alone')
})

t.test('bulk: schema errors name the key and what was expected', async (t) => {
  t.same(errorsOf(bulkRoute(`      path: api/_bulk
      batchSize: 0
      maxBatchBytes: 0mb
      maxWait: soon
      format: xml
      mode: fire-and-forget
      concurrency: 65
      maxPending: 0
      retry: {retries: 21, backoff: 0ms, maxBackoff: 5}`)), [
    'gw.yaml:6:13 routes[0].bulk.path: expected a path like /api/events/_bulk (printable ASCII, no spaces or #), got "api/_bulk"',
    'gw.yaml:7:18 routes[0].bulk.batchSize: expected an integer from 1 to 100000, got 0',
    'gw.yaml:8:22 routes[0].bulk.maxBatchBytes: expected a size like 1mb, got "0mb"',
    'gw.yaml:9:16 routes[0].bulk.maxWait: expected a duration like 50ms (0ms allowed), got "soon"',
    'gw.yaml:10:15 routes[0].bulk.format: expected one of json-array, ndjson, got "xml"',
    'gw.yaml:11:13 routes[0].bulk.mode: expected one of sync, async, got "fire-and-forget"',
    'gw.yaml:12:20 routes[0].bulk.concurrency: expected an integer from 1 to 64, got 65',
    'gw.yaml:13:19 routes[0].bulk.maxPending: expected a number >= 1, got 0',
    'gw.yaml:14:24 routes[0].bulk.retry.retries: expected an integer from 0 to 20, got 21',
    'gw.yaml:14:37 routes[0].bulk.retry.backoff: expected a duration like 5s, got "0ms"',
    'gw.yaml:14:54 routes[0].bulk.retry.maxBackoff: expected a duration like 5s, got 5'
  ])
  t.same(errorsOf(bulkRoute('      {path: "/a b", batchSize: 100001, concurrency: 1.5, maxWait: -1ms, retry: {retries: -1}}')), [
    'gw.yaml:6:14 routes[0].bulk.path: expected a path like /api/events/_bulk (printable ASCII, no spaces or #), got "/a b"',
    'gw.yaml:6:33 routes[0].bulk.batchSize: expected an integer from 1 to 100000, got 100001',
    'gw.yaml:6:54 routes[0].bulk.concurrency: expected an integer from 1 to 64, got 1.5',
    'gw.yaml:6:68 routes[0].bulk.maxWait: expected a duration like 50ms (0ms allowed), got "-1ms"',
    'gw.yaml:6:91 routes[0].bulk.retry.retries: expected an integer from 0 to 20, got -1'
  ])
  t.same(errorsOf(bulkRoute('      {path: /x#y, batchSize: many, retry: 3}')), [
    'gw.yaml:6:14 routes[0].bulk.path: expected a path like /api/events/_bulk (printable ASCII, no spaces or #), got "/x#y"',
    'gw.yaml:6:31 routes[0].bulk.batchSize: expected an integer from 1 to 100000, got "many"',
    'gw.yaml:6:44 routes[0].bulk.retry: expected an object, got 3'
  ], 'a batchSize of the wrong type is not compared with maxPending')
  t.same(errorsOf(bulkRoute('      maxWait: 10ms')), ['gw.yaml:6:7 routes[0].bulk.path: missing required key'])
  t.same(errorsOf(route('    bulk: true')), ['gw.yaml:5:11 routes[0].bulk: expected an object, got true'])
})

t.test('bulk: unknown keys are refused, with the known keys', async (t) => {
  t.same(errorsOf(bulkRoute('      {path: /x, batchsize: 10, retry: {jitter: true}}')), [
    'gw.yaml:6:18 routes[0].bulk.batchsize: unknown key (known keys: path, batchSize, maxBatchBytes, maxWait, format, mode, concurrency, maxPending, retry, claimAfter)',
    'gw.yaml:6:41 routes[0].bulk.retry.jitter: unknown key (known keys: retries, backoff, maxBackoff)'
  ])
})

t.test('bulk: per route only, never under defaults (nor are id and prefix)', async (t) => {
  t.same(errorsOf(`
defaults:
  upstream: http://127.0.0.1:9002
  bulk: {path: /_bulk}
  prefix: /api
`), [
    'gw.yaml:3:3 defaults.bulk: bulk is set on each route, not under defaults',
    'gw.yaml:4:3 defaults.prefix: prefix is set on each route, not under defaults'
  ])
})

t.test('bulk: a route with methods must include POST, whether set on the route or under defaults', async (t) => {
  t.same(errorsOf(bulkRoute('      path: /api/events/_bulk').replace('    bulk:', '    methods: [GET, PUT]\n    bulk:')), [
    'gw.yaml:6:5 routes[0].bulk: a bulk route coalesces POST requests: add POST to methods'
  ])
  t.same(errorsOf(`
defaults:
  methods: [GET]
routes:
  - id: events
    prefix: /api/events
    upstream: http://127.0.0.1:9002
    bulk: {path: /api/events/_bulk}
`), ['gw.yaml:7:5 routes[0].bulk: a bulk route coalesces POST requests: add POST to methods (the route\'s methods come from defaults)'])
  t.equal(load(`
defaults:
  methods: [GET]
routes:
  - id: events
    prefix: /api/events
    methods: [POST]
    upstream: http://127.0.0.1:9002
    bulk: {path: /api/events/_bulk}
`).routes[0]?.bulk?.path, '/api/events/_bulk', 'the route\'s own methods win')
})

t.test('bulk: maxPending below batchSize is an error, a batch could never fill', async (t) => {
  t.same(errorsOf(bulkRoute('      {path: /x, batchSize: 500, maxPending: 499}')), [
    'gw.yaml:6:46 routes[0].bulk.maxPending: expected at least batchSize (500), got 499: a batch could never fill, so each would wait out maxWait'
  ])
  t.same(errorsOf(bulkRoute('      {path: /x, maxPending: 999}')), [
    'gw.yaml:6:30 routes[0].bulk.maxPending: expected at least batchSize (1000 by default), got 999: a batch could never fill, so each would wait out maxWait'
  ])
})

t.test('bulk: retry.backoff above retry.maxBackoff is an error at the key that was set', async (t) => {
  t.same(errorsOf(bulkRoute('      {path: /x, retry: {backoff: 2s, maxBackoff: 1s}}')), [
    'gw.yaml:6:35 routes[0].bulk.retry.backoff: expected at most maxBackoff (1s), got "2s"'
  ])
  t.same(errorsOf(bulkRoute('      {path: /x, retry: {backoff: 6s}}')), [
    'gw.yaml:6:35 routes[0].bulk.retry.backoff: expected at most maxBackoff (5s by default), got "6s"'
  ])
  t.same(errorsOf(bulkRoute('      {path: /x, retry: {maxBackoff: 50ms}}')), [
    'gw.yaml:6:38 routes[0].bulk.retry.maxBackoff: expected at least backoff (100ms by default), got "50ms"'
  ])
  t.same(errorsOf(bulkRoute('      {path: /x, retry: {backoff: soon, maxBackoff: 1s}}')), [
    'gw.yaml:6:35 routes[0].bulk.retry.backoff: expected a duration like 5s, got "soon"'
  ], 'an invalid duration is reported once, by the schema')
})

const CLUSTER = `
redis:
  cluster: [redis://127.0.0.1:7101, redis://127.0.0.1:7102, redis://127.0.0.1:7103]
`

t.test('autoscaler: every key set, as the issue writes it', async (t) => {
  const config = load(`${CLUSTER}
autoscaler:
  mode: apply
  port: 9464
  interval: 15s
  window: 2m
  cooldown: 5m
  scaleOut: {cpu: 80, memory: 75}
  scaleIn:  {cpu: 30, memory: 50}
  minMasters: 3
  maxMasters: 9
  spareNodes: [redis://127.0.0.1:7104, redis://127.0.0.1:7105]
  backup: true
  migration: {pipeline: 100, timeout: 5s}
`)
  t.same(config.autoscaler, {
    mode: 'apply',
    port: 9464,
    intervalMs: 15_000,
    windowMs: 120_000,
    cooldownMs: 300_000,
    scaleOut: { cpu: 80, memory: 75 },
    scaleIn: { cpu: 30, memory: 50 },
    minMasters: 3,
    maxMasters: 9,
    spareNodes: ['redis://127.0.0.1:7104', 'redis://127.0.0.1:7105'],
    backup: true,
    migration: { pipeline: 100, timeoutMs: 5000 }
  })
  t.ok(Object.isFrozen(config.autoscaler.scaleOut) && Object.isFrozen(config.autoscaler.spareNodes), 'frozen with the rest of the config')
})

t.test('autoscaler: other values, and defaults merged key by key', async (t) => {
  const config = load(`
autoscaler:
  port: 0
  interval: 500ms
  window: 1s
  cooldown: 1h
  scaleOut: {cpu: 90.5}
  scaleIn: {memory: 10}
  minMasters: 4
  maxMasters: 4
  spareNodes: ['rediss://:secret@cache.internal:6380', 'redis://[::1]:7000/']
  backup: false
  migration: {timeout: 250ms}
`)
  t.same(config.autoscaler, {
    mode: 'recommend',
    port: 0,
    intervalMs: 500,
    windowMs: 1000,
    cooldownMs: 3_600_000,
    scaleOut: { cpu: 90.5, memory: 75 },
    scaleIn: { cpu: 30, memory: 10 },
    minMasters: 4,
    maxMasters: 4,
    spareNodes: ['rediss://:secret@cache.internal:6380', 'redis://[::1]:7000/'],
    backup: false,
    migration: { pipeline: 100, timeoutMs: 250 }
  })
  t.same(load('autoscaler: {}\n').autoscaler, load('').autoscaler, 'an empty block is the defaults')
  t.same(load('autoscaler: {migration: {pipeline: 10000}}\n').autoscaler.migration, { pipeline: 10_000, timeoutMs: 5000 })
})

t.test('autoscaler: schema errors name the key and what was expected', async (t) => {
  t.same(errorsOf(`
autoscaler:
  mode: auto
  port: 70000
  interval: 15
  window: 0m
  cooldown: soon
  scaleOut: {cpu: 0, memory: 101}
  scaleIn: {cpu: "30", load: 1}
  minMasters: 2
  maxMasters: many
  spareNodes: redis://127.0.0.1:7104
  backup: yes please
  migration: {pipeline: 0, timeout: 5}
  replicas: 1
`), [
    'gw.yaml:2:9 autoscaler.mode: expected one of recommend, apply, got "auto"',
    'gw.yaml:3:9 autoscaler.port: expected a port number from 0 to 65535, got 70000',
    'gw.yaml:4:13 autoscaler.interval: expected a duration like 5s, got 15',
    'gw.yaml:5:11 autoscaler.window: expected a duration like 5s, got "0m"',
    'gw.yaml:6:13 autoscaler.cooldown: expected a duration like 5s, got "soon"',
    'gw.yaml:7:19 autoscaler.scaleOut.cpu: expected a percentage above 0, at most 100, got 0',
    'gw.yaml:7:30 autoscaler.scaleOut.memory: expected a percentage above 0, at most 100, got 101',
    'gw.yaml:8:18 autoscaler.scaleIn.cpu: expected a percentage above 0, at most 100, got "30"',
    'gw.yaml:8:24 autoscaler.scaleIn.load: unknown key (known keys: cpu, memory)',
    'gw.yaml:9:15 autoscaler.minMasters: expected an integer of at least 3 (redis-cli\'s minimum), got 2',
    'gw.yaml:10:15 autoscaler.maxMasters: expected an integer of at least 3 (redis-cli\'s minimum), got "many"',
    'gw.yaml:11:15 autoscaler.spareNodes: expected an array, got "redis://127.0.0.1:7104"',
    'gw.yaml:12:11 autoscaler.backup: expected a boolean, got "yes please"',
    'gw.yaml:13:25 autoscaler.migration.pipeline: expected an integer from 1 to 10000, got 0',
    'gw.yaml:13:37 autoscaler.migration.timeout: expected a duration like 5s, got 5',
    'gw.yaml:14:3 autoscaler.replicas: unknown key (known keys: mode, port, interval, window, cooldown, scaleOut, scaleIn, minMasters, maxMasters, spareNodes, backup, migration)'
  ])
  t.same(errorsOf(`
autoscaler:
  spareNodes: [redis://127.0.0.1:7104, redis://127.0.0.1:7104, ""]
`), [
    'gw.yaml:2:15 autoscaler.spareNodes: expected no duplicates, got ["redis://127.0.0.1:7104","redis://127.0.0.1:7104",""]',
    'gw.yaml:2:64 autoscaler.spareNodes[2]: expected a redis://host:port URL, got ""'
  ])
})

t.test('autoscaler: apply mode needs redis.cluster, the cluster it manages', async (t) => {
  const message = 'autoscaler.mode: apply mode changes the cluster under redis.cluster: set redis.cluster (its startup nodes), or use mode: recommend'
  t.same(errorsOf('autoscaler: {mode: apply}\n'), [`gw.yaml:1:20 ${message}`])
  t.same(errorsOf(`
redis: {url: redis://127.0.0.1:6379}
autoscaler:
  mode: apply
`), [`gw.yaml:3:9 ${message}`], 'a standalone Redis is no cluster')
  t.equal(load(`${CLUSTER}autoscaler: {mode: apply}\n`).autoscaler.mode, 'apply')
  t.equal(load('autoscaler: {mode: recommend}\n').autoscaler.mode, 'recommend', 'recommend mode needs no cluster to load')
})

t.test('autoscaler: minMasters at most maxMasters, said at the key that was set', async (t) => {
  t.same(errorsOf('autoscaler: {minMasters: 6, maxMasters: 5}\n'), ['gw.yaml:1:41 autoscaler.maxMasters: expected at least minMasters (6), got 5'])
  t.same(errorsOf('autoscaler: {minMasters: 10}\n'), ['gw.yaml:1:26 autoscaler.minMasters: expected at most maxMasters (9 by default), got 10'])
  t.match(load('autoscaler: {maxMasters: 3}\n').autoscaler, { minMasters: 3, maxMasters: 3 }, 'equal is fine')
  t.same(errorsOf('autoscaler: {minMasters: 2, maxMasters: 1}\n'), [
    'gw.yaml:1:26 autoscaler.minMasters: expected an integer of at least 3 (redis-cli\'s minimum), got 2',
    'gw.yaml:1:41 autoscaler.maxMasters: expected an integer of at least 3 (redis-cli\'s minimum), got 1'
  ], 'values the schema refused are not compared')
})

t.test('autoscaler: each scale-in threshold below its scale-out one, said at the key that was set', async (t) => {
  t.same(errorsOf('autoscaler: {scaleIn: {cpu: 80}}\n'), ['gw.yaml:1:29 autoscaler.scaleIn.cpu: expected below scaleOut.cpu (80 by default), got 80: the cluster would flap'])
  t.same(errorsOf('autoscaler: {scaleOut: {memory: 50}}\n'), ['gw.yaml:1:33 autoscaler.scaleOut.memory: expected above scaleIn.memory (50 by default), got 50'])
  t.same(errorsOf('autoscaler: {scaleOut: {cpu: 40, memory: 60}, scaleIn: {cpu: 50, memory: 70}}\n'), [
    'gw.yaml:1:62 autoscaler.scaleIn.cpu: expected below scaleOut.cpu (40), got 50: the cluster would flap',
    'gw.yaml:1:74 autoscaler.scaleIn.memory: expected below scaleOut.memory (60), got 70: the cluster would flap'
  ])
  t.match(load('autoscaler: {scaleOut: {cpu: 40}, scaleIn: {cpu: 39.9}}\n').autoscaler, { scaleOut: { cpu: 40 }, scaleIn: { cpu: 39.9 } })
  t.same(errorsOf('autoscaler: {scaleOut: {cpu: 0}, scaleIn: {cpu: 50}}\n'), ['gw.yaml:1:30 autoscaler.scaleOut.cpu: expected a percentage above 0, at most 100, got 0'], 'a refused value is not compared')
})

t.test('autoscaler: the window holds two intervals at least, said at the key that was set', async (t) => {
  t.same(errorsOf('autoscaler: {window: 20s}\n'), ['gw.yaml:1:22 autoscaler.window: expected at least twice interval (15s by default), got "20s": a decision averages two samples or more'])
  t.same(errorsOf('autoscaler: {interval: 61s}\n'), ['gw.yaml:1:24 autoscaler.interval: expected at most half of window (2m by default), got "61s": a decision averages two samples or more'])
  t.same(errorsOf('autoscaler: {interval: 1m, window: 119s}\n'), ['gw.yaml:1:36 autoscaler.window: expected at least twice interval (1m), got "119s": a decision averages two samples or more'])
  t.match(load('autoscaler: {interval: 1m, window: 2m}\n').autoscaler, { intervalMs: 60_000, windowMs: 120_000 }, 'exactly twice is fine')
  t.same(errorsOf('autoscaler: {interval: 1m, window: 0s}\n'), ['gw.yaml:1:36 autoscaler.window: expected a duration like 5s, got "0s"'], 'a refused value is not compared')
})

t.test('autoscaler: spare nodes are redis://host:port URLs, none of them a node of redis.cluster', async (t) => {
  t.same(errorsOf(`${CLUSTER}
autoscaler:
  spareNodes:
    - http://127.0.0.1:7104
    - redis://127.0.0.1
    - redis://127.0.0.1:7104/0
    - redis://127.0.0.1:7105?db=1
    - 127.0.0.1:7106
    - redis://127.0.0.1:7102
    - rediss://127.0.0.1:7103
    - redis://127.0.0.1:7107
`), [
    'gw.yaml:6:7 autoscaler.spareNodes[0]: expected a redis://host:port URL (an explicit port, no path or query), got "http://127.0.0.1:7104"',
    'gw.yaml:7:7 autoscaler.spareNodes[1]: expected a redis://host:port URL (an explicit port, no path or query), got "redis://127.0.0.1"',
    'gw.yaml:8:7 autoscaler.spareNodes[2]: expected a redis://host:port URL (an explicit port, no path or query), got "redis://127.0.0.1:7104/0"',
    'gw.yaml:9:7 autoscaler.spareNodes[3]: expected a redis://host:port URL (an explicit port, no path or query), got "redis://127.0.0.1:7105?db=1"',
    'gw.yaml:10:7 autoscaler.spareNodes[4]: expected a redis://host:port URL (an explicit port, no path or query), got "127.0.0.1:7106"',
    'gw.yaml:11:7 autoscaler.spareNodes[5]: 127.0.0.1:7102 is already a node of the cluster (redis.cluster[1]), not a spare',
    'gw.yaml:12:7 autoscaler.spareNodes[6]: 127.0.0.1:7103 is already a node of the cluster (redis.cluster[2]), not a spare'
  ])
  t.same(errorsOf(`
redis:
  cluster: [redis://127.0.0.1:7101, redis://127.0.0.1:7101, "not a url", 5]
autoscaler:
  spareNodes: [redis://127.0.0.1:7101, 7]
`), [
    'gw.yaml:2:61 redis.cluster[2]: expected a redis:// or rediss:// URL, got "not a url"',
    'gw.yaml:2:74 redis.cluster[3]: expected a redis:// or rediss:// URL, got 5',
    'gw.yaml:4:16 autoscaler.spareNodes[0]: 127.0.0.1:7101 is already a node of the cluster (redis.cluster[0]), not a spare',
    'gw.yaml:4:40 autoscaler.spareNodes[1]: expected a redis://host:port URL, got 7'
  ], 'a startup node listed twice, or not a URL, still compares')
})

t.test('a value that breaks two rules of one key is reported once', async (t) => {
  t.same(errorsOf('autoscaler:\n  maxMasters: 2.5\n'), [
    'gw.yaml:2:15 autoscaler.maxMasters: expected an integer of at least 3 (redis-cli\'s minimum), got 2.5'
  ])
})
