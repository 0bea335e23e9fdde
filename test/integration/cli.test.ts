// The command line as a user runs it: `node bin/breakwater.js` (dist/), its output and exit codes.
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { REPO_ROOT, runCli, startCli, writeConfig } from '../helpers/cli.js'
import { withDeadline } from '../helpers/wait.js'

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

t.test('--help prints the usage and exits 0', async (t) => {
  const run = await runCli(['--help'])
  t.equal(run.code, 0)
  t.match(run.stdout, /^Usage: breakwater <command> \[options\]\n/)
  t.match(run.stdout, /\n {2}start /)
  t.match(run.stdout, /\n {2}check /)
  t.match(run.stdout, /--config FILE/)
  t.equal(run.stderr, '')
})

t.test('--version prints "breakwater <package.json version>"', async (t) => {
  const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
  const run = await runCli(['--version'])
  t.equal(run.code, 0)
  t.equal(run.stdout, `breakwater ${version}\n`)
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

  gw.child.kill('SIGTERM')
  t.same(await withDeadline(gw.exit, 'the gateway to exit', 5_000), { code: 0, signal: null })
  t.ok(await portFree(9001) && await portFree(9002), 'the demo upstreams are gone with it')
})
