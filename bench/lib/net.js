// Loopback helpers: a free port, one-off requests (a probe, a JSON GET or POST), and a bounded wait for a server to answer.
import { request } from 'node:http'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** A port free on 127.0.0.1 right now (the kernel's pick; another process could take it, which nothing here does). */
export async function freePort () {
  const server = createServer()
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(undefined))
  })
  const address = /** @type {import('node:net').AddressInfo} */ (server.address())
  await new Promise((resolve) => server.close(() => resolve(undefined)))
  return address.port
}

/**
 * @typedef {object} RequestSpec  a request other than a bare GET: a scenario's writes, sent alike by the probe and by wrk
 * @property {string} method
 * @property {Record<string, string>} [headers]
 * @property {string} [body]
 */

/**
 * One request with a fresh connection: a GET unless `spec` says otherwise.
 * @param {string} url
 * @param {RequestSpec} [spec]
 * @param {number} [timeoutMs]
 * @returns {Promise<{ status: number, bytes: number, headers: import('node:http').IncomingHttpHeaders, body: string }>}
 */
export function probe (url, spec = { method: 'GET' }, timeoutMs = 2_000) {
  const payload = spec.body === undefined ? undefined : Buffer.from(spec.body)
  const headers = { ...spec.headers, ...(payload === undefined ? {} : { 'content-length': String(payload.length) }) }
  return new Promise((resolve, reject) => {
    const req = request(url, { method: spec.method, headers, agent: false, timeout: timeoutMs }, (res) => {
      /** @type {Buffer[]} */
      const chunks = []
      res.on('data', (/** @type {Buffer} */ chunk) => { chunks.push(chunk) })
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        resolve({ status: res.statusCode ?? 0, bytes: body.length, headers: res.headers, body: body.toString('utf8') })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} in ${timeoutMs / 1000} s`)))
    req.on('error', reject)
    req.end(payload)
  })
}

/**
 * One GET of a JSON document; fails unless it answers 200.
 * @param {string} url
 * @param {number} [timeoutMs]
 * @returns {Promise<any>}
 */
export async function getJson (url, timeoutMs = 2_000) {
  const answer = await probe(url, { method: 'GET' }, timeoutMs)
  if (answer.status !== 200) throw new Error(`GET ${url} answered ${answer.status}: ${answer.body}`)
  return JSON.parse(answer.body)
}

/**
 * One POST of a JSON body with a fresh connection; fails unless it answers 2xx.
 * @param {string} url
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 * @returns {Promise<{ status: number, body: string }>}
 */
export function postJson (url, body, headers = {}) {
  const payload = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      agent: false,
      timeout: 2_000,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (/** @type {string} */ chunk) => { text += chunk })
      res.on('end', () => {
        const status = res.statusCode ?? 0
        if (status >= 200 && status < 300) resolve({ status, body: text })
        else reject(new Error(`POST ${url} answered ${status}: ${text}`))
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} in 2 s`)))
    req.on('error', reject)
    req.end(payload)
  })
}

/**
 * Polls `url` until it answers `status`, for at most `timeoutMs`; fails at once if `proc` exits meanwhile.
 * @param {string} url
 * @param {{ status?: number, timeoutMs?: number, proc?: import('./processes.js').Managed }} [options]
 */
export async function waitForHttp (url, { status = 200, timeoutMs = 15_000, proc } = {}) {
  const deadline = Date.now() + timeoutMs
  let last = 'no answer yet'
  while (Date.now() < deadline) {
    if (proc !== undefined && !proc.alive()) {
      throw new Error(`${proc.name} exited before answering ${url}:\n${proc.logTail()}`)
    }
    try {
      const answer = await probe(url)
      if (answer.status === status) return answer
      last = `status ${answer.status}`
    } catch (err) {
      last = /** @type {Error} */ (err).message
    }
    await sleep(50)
  }
  throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms (last: ${last})${proc === undefined ? '' : `\n${proc.logTail()}`}`)
}
