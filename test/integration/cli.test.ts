// The command line as a user runs it: `node bin/breakwater.js` (dist/), its output and exit codes.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { REPO_ROOT, runCli, startCli, writeConfig } from '../helpers/cli.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

t.test('check with a valid config prints "ok: N routes" and exits 0', async (t) => {
  const file = await writeConfig(t, `
routes:
  - id: a
    prefix: /a
    upstream: http://127.0.0.1:1
  - id: b
    prefix: /b
    upstream: http://127.0.0.1:2
  - id: c
    prefix: /c
    upstream: [http://127.0.0.1:3, http://127.0.0.1:4]
`)
  const [run, shipped] = await Promise.all([runCli(['check', '--config', file]), runCli(['check', '--config', 'config/gateway.yaml'])])
  t.equal(run.code, 0)
  t.equal(run.stdout, 'ok: 3 routes\n')
  t.equal(run.stderr, '')
  t.equal(shipped.code, 0)
  t.equal(shipped.stdout, 'ok: 2 routes\n', 'the shipped config is valid')
})

t.test('check with an invalid config prints every error as file:line:col and exits 1', async (t) => {
  const file = await writeConfig(t, [
    'server:',
    '  port: nope',
    'routes:',
    '  - id: Bad',
    '    prefix: x',
    '    upstream: ftp://a',
    '    timeout: fast',
    ''
  ].join('\n'))
  const [run, missing] = await Promise.all([runCli(['check', '--config', file]), runCli(['check', '--config', join(file, '..', 'absent.yaml')])])
  t.equal(run.code, 1)
  t.equal(run.stdout, '', 'nothing on stdout')
  const lines = run.stderr.trimEnd().split('\n')
  const expected = [
    `${file}:2:9 server.port: `,
    `${file}:4:9 routes[0].id: `,
    `${file}:5:13 routes[0].prefix: `,
    `${file}:6:15 routes[0].upstream: `,
    `${file}:7:14 routes[0].timeout: `
  ]
  t.equal(lines.length, expected.length + 1, 'one line per error, then a count')
  expected.forEach((start, i) => { t.ok(lines[i]?.startsWith(start), `line ${i + 1} starts ${JSON.stringify(start)}: ${lines[i]}`) })
  t.match(lines[4], /expected a duration like 5s, got "fast"/)
  t.equal(lines.at(-1), `5 errors in ${file}`)

  t.equal(missing.code, 1, 'an unreadable file is an error too')
  t.match(missing.stderr, /cannot read the config file/)
})

t.test('check points a YAML indentation mistake at the line that is wrong, in plain words', async (t) => {
  const file = await writeConfig(t, [
    'server:',
    '  port: 8080',
    'routes:',
    '  - id: a',
    '    prefix: /a',
    '    upstream: http://127.0.0.1:1',
    '      timeout: 2s',
    ''
  ].join('\n'))
  const run = await runCli(['check', '--config', file])
  t.equal(run.code, 1)
  t.equal(run.stderr, `${file}:7:7 bad indentation: "timeout" is indented under "upstream" (line 6), which has a value already; line it up with it at column 5\n1 error in ${file}\n`)
})

t.test('check and start refuse a config with no routes, at the routes key; autoscale needs none', async (t) => {
  const empty = await writeConfig(t, 'server:\n  port: 0\nroutes: []\n')
  const none = await writeConfig(t, 'server:\n  port: 0\n', 'none.yaml')
  const [check, start, missing] = await Promise.all([
    runCli(['check', '--config', empty]), runCli(['start', '--config', empty]), runCli(['check', '--config', none])
  ])
  const why = 'routes: expected at least one route: without one every request is answered 404'
  t.equal(check.code, 1)
  t.equal(check.stdout, '', 'not "ok: 0 routes"')
  t.equal(check.stderr, `${empty}:3:9 ${why}\n1 error in ${empty}\n`)
  t.equal(start.code, 1, 'start refuses it too')
  t.equal(start.stderr, check.stderr)
  t.equal(missing.stderr, `${none}:1:1 ${why}\n1 error in ${none}\n`, 'no routes key at all: the top of the file')
})

t.test('--help and -h print the usage and exit 0', async (t) => {
  const [run, short] = await Promise.all([runCli(['--help']), runCli(['-h'])])
  t.equal(run.code, 0)
  t.match(run.stdout, /^Usage: breakwater <command> \[options\]\n/)
  t.match(run.stdout, /\n {2}start /)
  t.match(run.stdout, /\n {2}check /)
  t.match(run.stdout, /--config FILE/)
  t.match(run.stdout, /\n {2}-h, --help /)
  t.equal(run.stderr, '')
  t.same(short, run, '-h is --help')
})

t.test('--version and -v print "breakwater <package.json version>"', async (t) => {
  const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
  const [run, short] = await Promise.all([runCli(['--version']), runCli(['-v'])])
  t.equal(run.code, 0)
  t.equal(run.stdout, `breakwater ${version}\n`)
  t.same(short, run, '-v is --version')
})

t.test('an unknown command or option exits 2 with the usage', async (t) => {
  const [command, option] = await Promise.all([runCli(['launch']), runCli(['check', '--frobnicate'])])
  t.equal(command.code, 2)
  t.match(command.stderr, /^unknown command "launch"\n/)
  t.match(command.stderr, /Usage: breakwater/)
  t.equal(command.stdout, '')

  t.equal(option.code, 2)
  t.match(option.stderr, /--frobnicate/)
  t.match(option.stderr, /Usage: breakwater/)
})

/** Whether 127.0.0.1:port can be bound right now. */
async function portFree (port: number): Promise<boolean> {
  const server = createServer()
  server.listen(port, '127.0.0.1')
  try {
    await once(server, 'listening')
  } catch {
    return false
  }
  await new Promise((resolve) => server.close(resolve))
  return true
}

t.test('start --demo serves the shipped config with the demo upstreams, and stops them on SIGTERM', async (t) => {
  // The demo upstreams bind fixed ports: say so plainly rather than fail on EADDRINUSE somewhere in a log.
  for (const port of [9001, 9002]) {
    t.ok(await portFree(port), `127.0.0.1:${port} is free for the demo upstreams`)
  }
  const gw = await startCli(t, 'config/gateway.yaml', { args: ['--demo'], env: { BREAKWATER_PORT: '0', BREAKWATER_HOST: '127.0.0.1' } })
  const res = await request(`${gw.url}/api/catalog/items/2`)
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(await res.body.json(), { id: 2, name: 'Harbour map', price: 30 })

  const echo = await request(`${gw.url}/echo/hi`, { method: 'POST', body: 'hello' })
  t.match(await echo.body.json(), { method: 'POST', url: '/echo/hi', bodyBytes: 5, headers: { 'x-gateway': 'breakwater' } })

  const started = gw.logs.filter((line) => /^breakwater .* started /.test(String(line.msg)))
  t.match(started, [{ config: 'config/gateway.yaml', routes: 2, cacheStore: 'memory', listeners: [{ role: 'traffic+management', url: gw.url }] }],
    'one startup line: /actuator is on the traffic port')

  gw.child.kill('SIGTERM')
  t.same(await withDeadline(gw.exit, 'the gateway to exit', 5_000), { code: 0, signal: null })
  t.ok(await portFree(9001) && await portFree(9002), 'the demo upstreams are gone with it')
})

t.test('start logs one startup line: version, config file, routes, cache store, each listener with its role', async (t) => {
  const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
  const file = await writeConfig(t, `
server: {host: 127.0.0.1, port: 0}
management: {host: 127.0.0.1, port: 0}
routes:
  - {id: a, prefix: /a, upstream: 'http://127.0.0.1:1', cache: {ttl: 1s}}
  - {id: b, prefix: /b, upstream: 'http://127.0.0.1:2'}
  - {id: c, prefix: /c, upstream: 'http://127.0.0.1:3'}
`)
  const gw = await startCli(t, file)
  const started = gw.logs.filter((line) => /^breakwater .* started /.test(String(line.msg)))
  t.equal(started.length, 1, 'one line')
  const [line] = started as Array<{ msg: string, listeners: Array<{ role: string, url: string }> }>
  t.match(line, { level: 30, version, config: file, routes: 3, cacheStore: 'memory' })
  t.same(line?.listeners.map(({ role }) => role), ['traffic', 'management'])
  t.equal(line?.listeners[0]?.url, gw.url, 'the traffic listener, with the port it was given')
  const management = line?.listeners[1]?.url ?? ''
  t.match(management, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.not(management, gw.url, 'the management listener on its own port')
  t.equal(line?.msg, `breakwater ${version} started with ${file}: 3 routes, cache store memory, traffic on ${gw.url}, management on ${management}`)
  t.equal((await request(`${management}/actuator/health`)).statusCode, 200, 'which serves /actuator')
  t.same(gw.logs.filter((l) => String(l.msg).startsWith('Server listening at ')), [], 'Fastify\'s address lines, one per interface, are left out')
})

/** Whether process `pid` still runs (signal 0 checks without sending). */
function running (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * `npm start` as a user runs it, stopped with `signal` sent to npm itself (what a process manager or `docker stop`
 * does): the gateway under it must stop too, not live on under PID 1.
 */
async function npmStartStopsOn (t: Test, signal: NodeJS.Signals): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, BREAKWATER_PORT: '0', BREAKWATER_HOST: '127.0.0.1' }
  delete env.NODE_OPTIONS
  const npm = spawn('npm', ['start'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const npmExit = once(npm, 'exit')
  let gatewayPid = 0
  t.teardown(() => {
    if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL')
    if (gatewayPid !== 0 && running(gatewayPid)) process.kill(gatewayPid, 'SIGKILL')
  })
  let output = ''
  npm.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  npm.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  await waitUntil(() => {
    if (npm.exitCode !== null) throw new Error(`npm start exited ${npm.exitCode} before the gateway started; output:\n${output}`)
    return /"msg":"breakwater .* started /.test(output)
  }, 'the gateway under npm start to log its startup line', 30_000)
  const startup = output.split('\n').find((text) => text.includes('"msg":"breakwater ')) ?? '{}'
  gatewayPid = (JSON.parse(startup) as { pid: number }).pid
  t.not(gatewayPid, npm.pid, 'the gateway runs in a process of its own')

  npm.kill(signal)
  await withDeadline(npmExit, `npm to exit on ${signal}`, 10_000)
  await waitUntil(() => !running(gatewayPid), `the gateway (pid ${gatewayPid}) to exit with npm`, 10_000)
  t.match(output, `"signal":"${signal}","msg":"shutting down: draining in-flight requests"`, 'the gateway drained on the same signal')
}

t.test('npm start stops on SIGTERM sent to npm', async (t) => {
  for (const port of [9001, 9002]) t.ok(await portFree(port), `127.0.0.1:${port} is free for the demo upstreams`)
  await npmStartStopsOn(t, 'SIGTERM')
  t.ok(await portFree(9001) && await portFree(9002), 'the demo upstreams are gone with it')
})

t.test('npm start stops on SIGINT sent to npm', async (t) => {
  await npmStartStopsOn(t, 'SIGINT')
})
