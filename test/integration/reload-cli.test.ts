// Hot reload as an operator uses it, through the real CLI process: SIGHUP, `breakwater reload`, and `start --watch` on a
// Kubernetes ConfigMap mount.
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { runCli, startCli, writeConfig, type RunningGateway } from '../helpers/cli.js'
import { freePort } from '../helpers/ports.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { waitUntil } from '../helpers/wait.js'

/** pino's numeric levels, as the gateway's JSON lines carry them. */
const INFO = 30
const ERROR = 50

/** A config with `routes` (id -> upstream), prefix `/<id>` each; `extra` is YAML appended at the top level. */
function gatewayYaml (port: number, routes: Record<string, Upstream>, options: { extra?: string, timeout?: string } = {}): string {
  const lines = [`server: {host: 127.0.0.1, port: ${port}}`, ...(options.extra === undefined ? [] : [options.extra]), 'routes:']
  for (const [id, upstream] of Object.entries(routes)) {
    lines.push(`  - id: ${id}`, `    prefix: /${id}`, `    upstream: ${upstream.url}`)
    if (id === 'a' && options.timeout !== undefined) lines.push(`    timeout: ${options.timeout}`)
  }
  return `${lines.join('\n')}\n`
}

/** GET through the gateway, the body read whole. */
async function get (url: string): Promise<{ status: number, body: string }> {
  const res = await request(url)
  return { status: res.statusCode, body: await res.body.text() }
}

/** Whether the gateway process has not exited. */
function running (gw: RunningGateway): boolean {
  return gw.child.exitCode === null && gw.child.signalCode === null
}

/**
 * The first log line `match` accepts, waited for within `timeoutMs`; fails at once, with its stderr, if the process
 * exits meanwhile (SIGHUP's default action is to terminate).
 */
async function logLine (gw: RunningGateway, match: (line: Record<string, unknown>) => boolean, what: string, timeoutMs = 5_000): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined
  await waitUntil(() => {
    if (!running(gw)) throw new Error(`the gateway exited (${String(gw.child.exitCode ?? gw.child.signalCode)}) while waiting for ${what}; stderr: ${gw.stderr()}`)
    found = gw.logs.find(match)
    return found !== undefined
  }, what, timeoutMs)
  return found as Record<string, unknown>
}

const msgStarts = (prefix: string) => (line: Record<string, unknown>): boolean => String(line.msg).startsWith(prefix)

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

t.test('SIGHUP reloads the config file: a new route answers, the old one still does, the process keeps running', async (t) => {
  const [a, b] = await Promise.all([startUpstream(t), startUpstream(t)])
  const file = await writeConfig(t, gatewayYaml(0, { a }))
  const gw = await startCli(t, file)
  t.equal((await get(`${gw.url}/b/x`)).status, 404, 'no route b before the reload')

  const next = gatewayYaml(0, { a, b })
  await writeFile(file, next)
  process.kill(gw.pid, 'SIGHUP')
  const line = await logLine(gw, msgStarts('config reloaded (signal)'), 'the "config reloaded (signal)" line')
  t.match(line, { level: INFO, trigger: 'signal', generation: 2, changed: [], added: ['b'], removed: [], restartRequired: [], sha256: sha256(next) })
  t.equal(line.msg, 'config reloaded (signal): generation 2; changed [], added [b], removed []')

  const viaB = await get(`${gw.url}/b/x`)
  t.equal(viaB.status, 200, 'route b answers')
  t.equal(b.received.at(-1)?.url, '/b/x', 'from upstream b')
  t.equal((await get(`${gw.url}/a/y`)).status, 200, 'route a still answers')
  t.equal(a.received.at(-1)?.url, '/a/y')
  t.ok(running(gw), 'SIGHUP did not stop the gateway')
  t.same(gw.logs.filter(msgStarts('shutting down')), [], 'nor start a shutdown')
})

t.test('SIGHUP with an invalid file: refused with file:line:col, the old routes keep serving, counted as a failure', async (t) => {
  const a = await startUpstream(t)
  const file = await writeConfig(t, gatewayYaml(0, { a }))
  const gw = await startCli(t, file)

  // Line 6, column 5: the unknown key under route a.
  await writeFile(file, `${gatewayYaml(0, { a })}    bogus: 1\n`)
  process.kill(gw.pid, 'SIGHUP')
  const line = await logLine(gw, msgStarts('config reload refused (signal)'), 'the "config reload refused (signal)" line')
  t.equal(line.level, ERROR)
  t.match(line, { trigger: 'signal', generation: 1, errors: [/^6:5 routes\[0\]\.bogus: unknown key/] })
  t.equal((line.errors as unknown[]).length, 1)
  t.match(String(line.msg), `\n${file}:6:5 routes[0].bogus: unknown key`, 'the error as `breakwater check` prints it')
  t.same(gw.logs.filter(msgStarts('config reloaded')), [], 'nothing applied')

  t.equal((await get(`${gw.url}/a/x`)).status, 200, 'route a still answers')
  t.ok(running(gw), 'the gateway keeps running')
  const metrics = await get(`${gw.url}/actuator/prometheus`)
  t.equal(metrics.status, 200)
  t.match(metrics.body, /^config_reloads_total\{result="failure"\} 1$/m)
  t.match(metrics.body, /^config_generation 1$/m)
  t.notMatch(metrics.body, /^config_reloads_total\{result="success"\} [1-9]/m, 'no success counted')
})

t.test('breakwater reload: applies a changed route, prints the answer; refuses a bad file with file:line:col; needs a token', async (t) => {
  // A slow answer on /a/slow: the shorter timeout the reload brings must be in force, not only reported.
  const a = await startUpstream(t, (req, res) => {
    const answer = (): void => { res.end('a') }
    if (req.url === '/a/slow') setTimeout(answer, 2_000).unref()
    else answer()
  })
  // `breakwater reload` reads the gateway's address from the file: the port must be a real one.
  const port = await freePort()
  const management = 'management: {token: s3cret}'
  const file = await writeConfig(t, gatewayYaml(port, { a }, { extra: management, timeout: '10s' }))
  const gw = await startCli(t, file)
  t.equal(gw.port, port)

  const next = gatewayYaml(port, { a }, { extra: management, timeout: '200ms' })
  await writeFile(file, next)
  const ok = await runCli(['reload', '--config', file])
  t.equal(ok.code, 0, `exit 0; stderr: ${ok.stderr}`)
  t.equal(ok.stderr, '')
  t.same(JSON.parse(ok.stdout), { generation: 2, changed: ['a'], added: [], removed: [] }, 'no restartRequired: nothing restart-only changed')
  const line = await logLine(gw, msgStarts('config reloaded (refresh)'), 'the "config reloaded (refresh)" line')
  t.match(line, { level: INFO, trigger: 'refresh', generation: 2, changed: ['a'], sha256: sha256(next) })
  const slow = await get(`${gw.url}/a/slow`)
  t.equal(slow.status, 504, 'route a now times out after 200ms')

  // Line 8, column 9: the second route's id, `a` again. The CLI reads the file for the address and token, and finds
  // the error itself: the gateway is not asked.
  await writeFile(file, `${next}  - id: a\n    prefix: /c\n    upstream: ${a.url}\n`)
  const invalid = await runCli(['reload', '--config', file])
  t.equal(invalid.code, 1)
  t.equal(invalid.stdout, '')
  t.equal(invalid.stderr, `${file}:8:9 routes[1].id: duplicate route id "a" (also routes[0])\n1 error in ${file}\nthe gateway was not asked to reload: it keeps serving its config\n`)

  // Valid where the CLI runs, invalid where the gateway does (a variable set only in the operator's shell): the
  // gateway's own refusal, line 10 column 15, printed by the CLI.
  await writeFile(file, `${next}  - id: c\n    prefix: /c\n    upstream: \${BW_RELOAD_TEST_UPSTREAM}\n`)
  const refused = await runCli(['reload', '--config', file], { env: { BW_RELOAD_TEST_UPSTREAM: a.url } })
  t.equal(refused.code, 1)
  t.equal(refused.stdout, '')
  t.equal(refused.stderr, `reload refused (400): 1 error in ${file}; generation 2 keeps serving\n` +
    `${file}:10:15 routes[1].upstream: environment variable BW_RELOAD_TEST_UPSTREAM is not set (use \${BW_RELOAD_TEST_UPSTREAM:-default} for a default)\n`)
  const logged = await logLine(gw, msgStarts('config reload refused (refresh)'), 'the "config reload refused (refresh)" line')
  t.match(logged, { level: ERROR, trigger: 'refresh', generation: 2, errors: [/^10:15 routes\[1\]\.upstream: environment variable/] })
  t.equal(gw.logs.filter(msgStarts('config reload refused')).length, 1, 'the duplicate id never reached the gateway')
  t.equal((await get(`${gw.url}/a/x`)).status, 200, 'generation 2 keeps serving')
  t.equal((await get(`${gw.url}/c/x`)).status, 404, 'nothing of the refused file applied')

  const noToken = await writeConfig(t, gatewayYaml(port, { a }))
  const unreachable = await writeConfig(t, gatewayYaml(await freePort(), { a }, { extra: management }))
  const [without, away] = await Promise.all([runCli(['reload', '--config', noToken]), runCli(['reload', '--config', unreachable])])
  t.equal(without.code, 1)
  t.match(without.stderr, 'management.token')
  t.equal(away.code, 1)
  t.match(away.stderr, /^cannot reach the gateway at http:\/\/127\.0\.0\.1:\d+\/actuator\/refresh/)
  t.equal(gw.logs.filter((l) => /^config reload/.test(String(l.msg))).length, 2, 'neither reached the gateway')
})

t.test('start --watch on a ConfigMap mount reloads when the kubelet swaps ..data', async (t) => {
  const [a, b] = await Promise.all([startUpstream(t), startUpstream(t)])
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-configmap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // The layout the kubelet makes: gateway.yaml -> ..data/gateway.yaml, ..data -> ..<timestamp>.
  await mkdir(join(dir, '..2026_a'))
  await writeFile(join(dir, '..2026_a', 'gateway.yaml'), gatewayYaml(0, { a }))
  await symlink('..2026_a', join(dir, '..data'))
  await symlink(join('..data', 'gateway.yaml'), join(dir, 'gateway.yaml'))
  const file = join(dir, 'gateway.yaml')
  const gw = await startCli(t, file, { args: ['--watch'] })
  t.equal((await get(`${gw.url}/b/x`)).status, 404, 'no route b before the update')

  const next = gatewayYaml(0, { a, b })
  await swapConfigMap(dir, '..2026_b', next)
  const line = await logLine(gw, msgStarts('config reloaded (watch)'), 'the "config reloaded (watch)" line')
  t.match(line, { level: INFO, trigger: 'watch', generation: 2, added: ['b'], sha256: sha256(next) })
  t.equal(await readFile(file, 'utf8'), next, 'the file name now reads the new version')
  const viaB = await get(`${gw.url}/b/x`)
  t.equal(viaB.status, 200, 'route b answers')
  t.equal(b.received.length, 1, 'from upstream b')
  t.equal(gw.logs.filter(msgStarts('config reloaded')).length, 1, 'one reload for the swap')
})

/** A ConfigMap update as the kubelet makes it: the new version's directory, `..data_tmp` to it, renamed over `..data`. */
async function swapConfigMap (dir: string, version: string, yaml: string): Promise<void> {
  await mkdir(join(dir, version))
  await writeFile(join(dir, version, 'gateway.yaml'), yaml)
  await symlink(version, join(dir, '..data_tmp'))
  await rename(join(dir, '..data_tmp'), join(dir, '..data'))
}
