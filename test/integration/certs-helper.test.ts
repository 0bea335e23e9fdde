// The test PKI (test/helpers/certs.ts) against its promises: openssl's view of the dates, and Node's TLS accepting and
// refusing exactly what the TLS tests will lean on, with real HTTPS servers on 127.0.0.1.
import { execFile } from 'node:child_process'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer, request, type ServerOptions } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { makeTestPki, type CertPair } from '../helpers/certs.js'
import { withDeadline } from '../helpers/wait.js'

const execFileAsync = promisify(execFile)

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'

const pki = await makeTestPki(t)

interface Listening {
  readonly port: number
  /** What the server answered, one per request it served. */
  readonly served: Array<Record<string, unknown>>
  /** Errors of handshakes the server refused ('tlsClientError'). */
  readonly refused: Error[]
}

/** An HTTPS server on 127.0.0.1 answering with what it knows of the client's certificate; closed in teardown. */
async function listen (t: Test, pair: CertPair, options: ServerOptions = {}): Promise<Listening> {
  const served: Array<Record<string, unknown>> = []
  const refused: Error[] = []
  const server = createServer({ cert: pair.certPem, key: pair.keyPem, ...options }, (req, res) => {
    const socket = req.socket as TLSSocket
    const answer = { authorized: socket.authorized, cn: socket.getPeerCertificate().subject?.CN ?? null, error: socket.authorizationError ?? null }
    served.push(answer)
    res.end(JSON.stringify(answer))
  })
  server.on('tlsClientError', (err) => { refused.push(err) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    server.close()
    await once(server, 'close')
  })
  return { port: (server.address() as AddressInfo).port, served, refused }
}

/**
 * GET / over a fresh connection to 127.0.0.1:port, trusting only `trust`; `servername` is the name checked against the
 * certificate (and sent as SNI) in place of 127.0.0.1, since "localhost" may resolve to ::1 where nothing listens.
 */
async function get (port: number, trust: CertPair, options: { servername?: string, client?: CertPair } = {}): Promise<Record<string, unknown>> {
  const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: '/',
      agent: false,
      ca: trust.certPem,
      ...(options.servername === undefined ? {} : { servername: options.servername }),
      ...(options.client === undefined ? {} : { cert: options.client.certPem, key: options.client.keyPem })
    }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve(JSON.parse(body) as Record<string, unknown>) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
  return await withDeadline(answer, `GET https://127.0.0.1:${port}/`)
}

/** Whether `openssl x509 -checkend seconds` says the certificate is still valid `seconds` from now. */
async function validFor (pair: CertPair, seconds: number): Promise<boolean> {
  try {
    await execFileAsync('openssl', ['x509', '-noout', '-checkend', String(seconds), '-in', pair.cert], { timeout: 10_000 })
    return true
  } catch (err) {
    if ((err as { code?: unknown }).code === 1) return false
    throw err
  }
}

t.test('openssl: every certificate is valid now but `expired`; `server` for one day', async (t) => {
  const { dir, expired, ...current } = pki
  const checks = await Promise.all(Object.values(current).map(async (pair) => await validFor(pair, 0)))
  t.same(checks, Object.values(current).map(() => true), 'valid now: ' + Object.keys(current).join(', '))
  t.equal(await validFor(expired, 0), false, 'expired has expired')
  t.equal(await validFor(pki.server, 23 * 3600), true, 'server is valid 23 hours from now')
  t.equal(await validFor(pki.server, 25 * 3600), false, 'server is not valid 25 hours from now')
})

t.test('files and PEMs agree; each key belongs to its certificate; subjects, issuers and uses as documented', async (t) => {
  const x509 = (pair: CertPair): X509Certificate => new X509Certificate(pair.certPem)
  const { dir, ...pairs } = pki
  for (const [name, pair] of Object.entries(pairs)) {
    t.equal(await readFile(pair.cert, 'utf8'), pair.certPem, `${name}.cert holds certPem`)
    t.equal(await readFile(pair.key, 'utf8'), pair.keyPem, `${name}.key holds keyPem`)
    t.ok(x509(pair).checkPrivateKey(createPrivateKey(pair.keyPem)), `${name}: the key matches the certificate`)
  }
  const ca = x509(pki.ca)
  const otherCa = x509(pki.otherCa)
  t.equal(ca.subject, 'CN=Breakwater Test CA')
  t.ok(ca.ca && otherCa.ca, 'both CAs are CAs')
  t.ok(ca.verify(ca.publicKey) && otherCa.verify(otherCa.publicKey), 'both CAs are self-signed')
  t.not(ca.fingerprint256, otherCa.fingerprint256)
  for (const name of ['server', 'serverRotated', 'expired', 'wrongName', 'client'] as const) {
    const cert = x509(pki[name])
    t.ok(cert.verify(ca.publicKey), `${name} is signed by ca`)
    t.notOk(cert.ca, `${name} is not a CA`)
  }
  const server = x509(pki.server)
  const rotated = x509(pki.serverRotated)
  for (const cert of [server, rotated, x509(pki.expired)]) {
    t.equal(cert.subject, 'CN=localhost')
    t.equal(cert.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1')
    t.same(cert.keyUsage, [SERVER_AUTH])
  }
  t.not(rotated.serialNumber, server.serialNumber, 'the rotated certificate has its own serial')
  t.not(rotated.publicKey.export({ format: 'pem', type: 'spki' }), server.publicKey.export({ format: 'pem', type: 'spki' }), 'and its own key')
  t.equal(x509(pki.wrongName).subjectAltName, 'DNS:wrong.example')
  t.equal(x509(pki.client).subject, 'CN=client')
  t.same(x509(pki.client).keyUsage, [CLIENT_AUTH])
  const otherClient = x509(pki.otherClient)
  t.same(otherClient.keyUsage, [CLIENT_AUTH])
  t.ok(otherClient.verify(otherCa.publicKey), 'otherClient is signed by otherCa')
  t.notOk(otherClient.verify(ca.publicKey), 'not by ca')
})

t.test('a client trusting ca reaches `server` and `serverRotated` at 127.0.0.1 and as localhost', async (t) => {
  for (const name of ['server', 'serverRotated'] as const) {
    const { port } = await listen(t, pki[name])
    t.same(await get(port, pki.ca), { authorized: false, cn: null, error: null }, `${name} at 127.0.0.1 (no client certificate asked)`)
    t.same(await get(port, pki.ca, { servername: 'localhost' }), { authorized: false, cn: null, error: null }, `${name} as localhost`)
  }
})

t.test('a client trusting only otherCa refuses `server`', async (t) => {
  const { port } = await listen(t, pki.server)
  await t.rejects(get(port, pki.otherCa), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })
})

t.test('`expired` fails verification with CERT_HAS_EXPIRED', async (t) => {
  const { port } = await listen(t, pki.expired)
  await t.rejects(get(port, pki.ca), { code: 'CERT_HAS_EXPIRED' })
  await t.rejects(get(port, pki.ca, { servername: 'localhost' }), { code: 'CERT_HAS_EXPIRED' })
})

t.test('`wrongName` fails with ERR_TLS_CERT_ALTNAME_INVALID for 127.0.0.1 and localhost', async (t) => {
  const { port } = await listen(t, pki.wrongName)
  await t.rejects(get(port, pki.ca), { code: 'ERR_TLS_CERT_ALTNAME_INVALID', reason: /IP: 127\.0\.0\.1 is not in the cert's list/ })
  await t.rejects(get(port, pki.ca, { servername: 'localhost' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' })
})

t.test('a server requiring a certificate from ca accepts `client` and refuses `otherClient`', async (t) => {
  const requireCa = { requestCert: true, ca: pki.ca.certPem }
  const strict = await listen(t, pki.server, { ...requireCa, rejectUnauthorized: true })
  t.same(await get(strict.port, pki.ca, { client: pki.client }), { authorized: true, cn: 'client', error: null })
  // Node checks the client's chain after the handshake and just destroys the socket: neither side learns why.
  await t.rejects(get(strict.port, pki.ca, { client: pki.otherClient }), { code: 'ECONNRESET' })
  t.equal(strict.served.length, 1, 'the refused client was never served')
  t.equal(strict.refused.length, 1, 'the server refused its handshake')
  // Why, from a server that asks but lets the request through.
  const lenient = await listen(t, pki.server, { ...requireCa, rejectUnauthorized: false })
  t.same(await get(lenient.port, pki.ca, { client: pki.otherClient }), { authorized: false, cn: 'other-client', error: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })
})

t.test('the directory is removed in teardown', async (t) => {
  let dir = ''
  await t.test('makes a PKI', async (t) => {
    const started = performance.now()
    dir = (await makeTestPki(t)).dir
    t.comment(`made in ${Math.round(performance.now() - started)} ms`)
    t.ok(existsSync(dir))
  })
  t.notOk(existsSync(dir), `${dir} is gone`)
})
