// A redis-server for cache scenarios: no persistence, pinned to the load CPU like the origin, its files under the run's temp dir.
import { mkdirSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './net.js'
import { LOAD_CPU, spawnPinned } from './processes.js'

/**
 * @typedef {object} RedisService
 * @property {string} url  `redis://127.0.0.1:PORT`
 * @property {number} pid
 * @property {() => Promise<void>} stop
 */

/**
 * Starts redis-server on a free loopback port and waits until it answers PING.
 * @param {{ dir: string, redisServer: string, cpu?: number }} options
 * @returns {Promise<RedisService>}
 */
export async function startRedis ({ dir, redisServer, cpu = LOAD_CPU }) {
  const root = join(dir, 'redis')
  mkdirSync(root, { recursive: true })
  const port = await freePort()
  const proc = spawnPinned('redis-server', cpu, redisServer, [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', root, '--save', '', '--appendonly', 'no'
  ], { logFile: join(root, 'redis.log'), stdout: 'log' })
  for (let attempt = 0; attempt < 100; attempt++) {
    if (!proc.alive()) break
    if (await ping(port)) return { url: `redis://127.0.0.1:${port}`, pid: proc.pid, stop: () => proc.stop() }
    await sleep(50)
  }
  await proc.stop()
  throw new Error(`redis-server did not answer PING on port ${port}:\n${proc.logTail()}`)
}

/** One PING over a fresh connection: true on +PONG. */
function ping (/** @type {number} */ port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.setTimeout(500)
    socket.once('connect', () => { socket.write('PING\r\n') })
    socket.once('data', (data) => {
      socket.destroy()
      resolve(data.toString().startsWith('+PONG'))
    })
    socket.once('error', () => { resolve(false) })
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
  })
}
