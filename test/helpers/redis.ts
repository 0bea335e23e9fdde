// Real redis-server processes for tests, standalone or as a Cluster, on ephemeral loopback ports; stopped in t.teardown.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort, probePort } from './ports.js'
import { waitUntil } from './wait.js'

const execFileAsync = promisify(execFile)

/** The Cluster bus listens on port + 10000, so a node's port must leave room for it below 65536. */
const CLUSTER_BUS_OFFSET = 10_000
const MAX_CLUSTER_PORT = 65_535 - CLUSTER_BUS_OFFSET
/** How long a server may take to answer PING, and a Cluster to reach cluster_state:ok. */
const START_TIMEOUT_MS = 10_000
const CLUSTER_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 5_000
/** A cluster node's flags; a relative cluster-config-file lands in --dir, the node's own temp dir. */
const CLUSTER_NODE_ARGS = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000']

export interface RedisServer {
  /** `redis://[:password@]127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  /** Whether the process is running (paused counts as running). */
  readonly running: boolean
  /** SIGTERM (SIGKILL if it lingers) and waits for the exit. Does nothing once stopped. */
  stop: () => Promise<void>
  /** SIGKILL and waits for the exit: connections drop at once, as when the host dies. */
  kill: () => Promise<void>
  /** Starts it again on the same port and directory once stopped or killed; resolves when it answers PING. */
  restart: () => Promise<void>
  /** SIGSTOP: connections stay open and nothing is answered, as with a hung Redis. */
  pause: () => void
  /** SIGCONT after `pause`. */
  resume: () => void
  /** Runs redis-cli against it and returns its trimmed output: `cli('cluster', 'info')`. */
  cli: (...args: string[]) => Promise<string>
}

export interface RedisServerOptions {
  /** Started with `--requirepass`; `url` carries it. */
  readonly password?: string
}

export interface RedisClusterOptions {
  /** Masters, each a redis-server with no replica; redis-cli needs at least 3. @default 3 */
  readonly masters?: number
}

export interface RedisCluster {
  /** Startup node URLs, one per master. */
  readonly nodes: readonly string[]
  readonly ports: readonly number[]
  /** One handle per master, in the order of `nodes`. */
  readonly servers: readonly RedisServer[]
  stop: () => Promise<void>
}

interface TapLike { teardown: (fn: () => unknown) => void }

/** Starts a standalone redis-server with no persistence; it is stopped and its directory removed in `t.teardown`. */
export async function startRedis (t: TapLike, options: RedisServerOptions = {}): Promise<RedisServer> {
  await requireBinaries()
  const port = await nodePort(false)
  return launch(t, port, options.password === undefined ? [] : ['--requirepass', options.password], options.password)
}

/**
 * Starts `masters` cluster-enabled redis-servers, joins them with `redis-cli --cluster create` (no replicas) and waits
 * until every node reports cluster_state:ok with all 16384 slots assigned. Stopped in `t.teardown`.
 */
export async function startRedisCluster (t: TapLike, options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3
  if (!Number.isInteger(masters) || masters < 3) throw new TypeError(`expected options.masters to be an integer of at least 3 (redis-cli's minimum), got ${masters}`)
  await requireBinaries()
  const servers: RedisServer[] = []
  for (let i = 0; i < masters; i++) {
    // One at a time: a running node holds its port and bus port, so the next probe cannot hand them out again.
    const port = await nodePort(true)
    servers.push(await launch(t, port, CLUSTER_NODE_ARGS))
  }
  const addresses = servers.map((server) => `127.0.0.1:${server.port}`)
  await execFileAsync('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: CLUSTER_TIMEOUT_MS })
  await waitUntil(async () => {
    const infos = await Promise.all(servers.map((server) => server.cli('cluster', 'info').catch(() => '')))
    return infos.every((info) => info.includes('cluster_state:ok') && info.includes('cluster_slots_assigned:16384') &&
      info.includes(`cluster_known_nodes:${masters}`))
  }, `a ${masters}-master cluster on ports ${addresses.join(', ')} to reach cluster_state:ok`, CLUSTER_TIMEOUT_MS, 50)
  return {
    nodes: servers.map((server) => server.url),
    ports: servers.map((server) => server.port),
    servers,
    stop: async () => { await Promise.all(servers.map((server) => server.stop())) }
  }
}

/**
 * Starts one cluster-enabled redis-server that is in no cluster yet (it knows only itself and holds no slot): a spare
 * for the autoscaler to add. Stopped in `t.teardown`.
 */
export async function startClusterNode (t: TapLike): Promise<RedisServer> {
  await requireBinaries()
  return launch(t, await nodePort(true), CLUSTER_NODE_ARGS)
}

let binariesChecked: Promise<void> | undefined

/** Fails once, clearly, when redis-server or redis-cli is not installed. */
async function requireBinaries (): Promise<void> {
  binariesChecked ??= (async () => {
    for (const binary of ['redis-server', 'redis-cli']) {
      try {
        await execFileAsync(binary, ['--version'])
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
        throw new Error(`${binary} not found on PATH: the Redis integration tests run a real Redis. Install the apt package redis-server (apt-get install redis-server; it brings redis-cli)`)
      }
    }
  })()
  return binariesChecked
}

/** A free loopback port; with `bus`, one below 55536 whose Cluster bus port (+10000) is free too. */
async function nodePort (bus: boolean): Promise<number> {
  return await freePort(async (port) => !bus || (port <= MAX_CLUSTER_PORT && await probePort(port + CLUSTER_BUS_OFFSET) !== null))
}

/** Spawns redis-server on `port` in a fresh temp dir and waits until it answers PING. */
async function launch (t: TapLike, port: number, extraArgs: readonly string[], password?: string): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'bw-redis-'))
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--loglevel', 'warning', ...extraArgs
  ]
  // redis-cli takes the password from the environment, so it is neither on a command line nor warned about.
  const cliEnv = password === undefined ? process.env : { ...process.env, REDISCLI_AUTH: password }
  let child: ChildProcess | null = null
  let paused = false
  let output = ''

  const alive = (proc: ChildProcess | null): proc is ChildProcess => proc !== null && proc.exitCode === null && proc.signalCode === null
  const cli = async (...cliArgs: string[]): Promise<string> => {
    const { stdout } = await execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...cliArgs], { env: cliEnv, timeout: 5_000 })
    return stdout.trim()
  }
  const spawnServer = async (): Promise<void> => {
    output = ''
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    const keep = (chunk: Buffer): void => { output = (output + chunk.toString('utf8')).slice(-4000) }
    proc.stdout?.on('data', keep)
    proc.stderr?.on('data', keep)
    await waitUntil(async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`redis-server on port ${port} exited (${proc.exitCode ?? proc.signalCode}) before answering PING:\n${output}`)
      return (await cli('ping').catch(() => '')) === 'PONG'
    }, `redis-server on port ${port} to answer PING`, START_TIMEOUT_MS, 20)
  }
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const proc = child
    if (!alive(proc)) return
    const exited = once(proc, 'exit')
    // A stopped process only acts on SIGTERM once continued.
    if (paused && sig !== 'SIGKILL') proc.kill('SIGCONT')
    paused = false
    proc.kill(sig)
    let timer: NodeJS.Timeout | undefined
    const lingering = new Promise<'linger'>((resolve) => { timer = setTimeout(() => resolve('linger'), STOP_TIMEOUT_MS) })
    if (await Promise.race([exited, lingering]) === 'linger') {
      proc.kill('SIGKILL')
      await exited
    }
    clearTimeout(timer)
  }

  const server: RedisServer = {
    url: password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    port,
    get running () { return alive(child) },
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    restart: async () => {
      if (alive(child)) throw new Error(`redis-server on port ${port} is still running: stop or kill it before restart`)
      await spawnServer()
    },
    pause: () => {
      if (!alive(child)) throw new Error(`redis-server on port ${port} is not running`)
      child.kill('SIGSTOP')
      paused = true
    },
    resume: () => {
      if (!alive(child)) throw new Error(`redis-server on port ${port} is not running`)
      child.kill('SIGCONT')
      paused = false
    },
    cli
  }
  t.teardown(async () => {
    await server.stop()
    await rm(dir, { recursive: true, force: true })
  })
  await spawnServer()
  return server
}
