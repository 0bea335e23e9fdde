// What the bench needs on the machine (nginx, wrk, taskset, two CPUs, a built gateway), installed from Debian when run as root.
import { execFileSync, spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { delimiter, join } from 'node:path'

/** Debian package of each tool. */
const PACKAGES = /** @type {const} */ ({ nginx: 'nginx', wrk: 'wrk', taskset: 'util-linux', 'redis-server': 'redis-server' })

/** nginx lives in /usr/sbin, which a non-root PATH often lacks. */
function which (/** @type {string} */ tool) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin']
  for (const dir of dirs) {
    const file = join(dir, tool)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {}
  }
  return null
}

/**
 * Finds nginx, wrk and taskset; installs the missing ones with apt-get when running as root, otherwise says how.
 * @param {(message: string) => void} log
 * @returns {{ nginx: string, wrk: string, taskset: string, redisServer: string }}
 */
export function ensureTools (log) {
  let missing = Object.keys(PACKAGES).filter((tool) => which(tool) === null)
  if (missing.length > 0) {
    const packages = missing.map((tool) => PACKAGES[/** @type {keyof typeof PACKAGES} */ (tool)])
    if (process.getuid?.() !== 0 || which('apt-get') === null) {
      throw new Error(`the bench needs ${missing.join(', ')}: install with \`sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}\``)
    }
    log(`installing ${packages.join(' ')} from Debian (apt-get)`)
    // apt's own output goes to stderr: stdout carries only the results table.
    /** @type {import('node:child_process').StdioOptions} */
    const stdio = ['ignore', 2, 2]
    execFileSync('apt-get', ['update'], { stdio })
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { stdio, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    missing = Object.keys(PACKAGES).filter((tool) => which(tool) === null)
    if (missing.length > 0) throw new Error(`apt-get did not provide ${missing.join(', ')}`)
  }
  if (availableParallelism() < 2) {
    throw new Error(`the bench pins the proxy and the load to two different CPUs; this process may use ${availableParallelism()}`)
  }
  return {
    nginx: /** @type {string} */ (which('nginx')),
    wrk: /** @type {string} */ (which('wrk')),
    taskset: /** @type {string} */ (which('taskset')),
    redisServer: /** @type {string} */ (which('redis-server'))
  }
}

/**
 * Fails when the gateway is not built, and warns when src/ has changed since dist/ was built.
 * @param {string} gatewayDir
 * @param {(message: string) => void} log
 */
export function checkBuilt (gatewayDir, log) {
  const cli = join(gatewayDir, 'dist', 'cli.js')
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first (\`npm run bench\` does)`)
  // A copy with dist/ alone (a snapshot of another build) has no src/ to compare with.
  const src = join(gatewayDir, 'src')
  if (existsSync(src) && newestMtime(src) > statSync(cli).mtimeMs) log('warning: src/ is newer than dist/: the bench measures the last build; run `npm run build`')
}

function newestMtime (/** @type {string} */ dir) {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs)
  }
  return newest
}

/**
 * Versions and machine facts for the report.
 * @param {string} gatewayDir
 * @param {{ nginx: string, wrk: string }} tools
 */
export function environment (gatewayDir, tools) {
  // nginx -v and wrk -v print to stderr, and wrk -v exits 1: both streams are read, whatever the status.
  const run = (/** @type {string} */ command, /** @type {string[]} */ args) => {
    const { stdout, stderr } = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    return `${stdout ?? ''}${stderr ?? ''}`.trim()
  }
  const git = (/** @type {string[]} */ args) => {
    const { status, stdout } = spawnSync('git', args, { encoding: 'utf8', cwd: gatewayDir, stdio: ['ignore', 'pipe', 'ignore'] })
    return status === 0 ? stdout.trim() : null
  }
  const commit = git(['rev-parse', '--short', 'HEAD'])
  const dirty = (git(['status', '--porcelain', '--', 'src']) ?? '') !== ''
  return {
    node: process.version,
    nginx: run(tools.nginx, ['-v']).replace(/^nginx version: /, ''),
    wrk: run(tools.wrk, ['-v']).split('\n')[0]?.split(' [')[0] ?? 'wrk',
    commit: commit === null ? 'not a git checkout' : `${commit}${dirty ? ' + uncommitted changes in src/' : ''}`
  }
}
