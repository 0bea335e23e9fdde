// TLS at the listener: HTTPS with the configured pair, client certificates (mTLS), and rotation of the files in place.
import { copyFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect, type PeerCertificate } from 'node:tls'
import t from 'tap'
import { pino } from 'pino'
import { Agent, request } from 'undici'
import { ConfigError, parseConfig } from '../../src/config/index.js'
import { makeTestPki, type CertPair, type TestPki } from '../helpers/certs.js'
import { startGateway, type Gateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitUntil, withDeadline } from '../helpers/wait.js'

/** The listener's files, copied where the test can replace them as cert-manager does. */
async function listenerFiles (pki: TestPki): Promise<{ cert: string, key: string }> {
  const cert = join(pki.dir, 'listener.crt')
  const key = join(pki.dir, 'listener.key')
  await copyFile(pki.server.cert, cert)
  await copyFile(pki.server.key, key)
  return { cert, key }
}

/** An HTTPS client that trusts the test CA, presenting `client` when given. */
function httpsClient (pki: TestPki, client?: CertPair): Agent {
  return new Agent({ connect: { ca: pki.ca.certPem, ...(client === undefined ? {} : { cert: client.certPem, key: client.keyPem }) } })
}

/** The serial number of the certificate a new handshake with the gateway gets. */
async function servedSerial (gw: Gateway, pki: TestPki): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: gw.port, ca: pki.ca.certPem, servername: 'localhost' }, () => {
      const peer: PeerCertificate = socket.getPeerCertificate()
      socket.end()
      resolve(peer.serialNumber)
    })
    socket.on('error', reject)
  })
}

t.test('HTTPS: requests are routed as over HTTP, the upstream hears X-Forwarded-Proto https, the actuator answers', async (t) => {
  const pki = await makeTestPki(t)
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
server:
  tls: {cert: ${pki.server.cert}, key: ${pki.server.key}}
routes:
  - id: a
    prefix: /a
    upstream: ${origin.url}
`)
  const https = httpsClient(pki)
  t.teardown(() => https.close())
  const base = `https://127.0.0.1:${gw.port}`
  const res = await request(`${base}/a/x`, { dispatcher: https })
  const body = await res.body.json() as { url: string, headers: Record<string, string> }
  t.equal(res.statusCode, 200)
  t.equal(body.url, '/a/x')
  t.equal(body.headers['x-forwarded-proto'], 'https')
  const health = await request(`${base}/actuator/health`, { dispatcher: https })
  t.same(await health.body.json(), { status: 'UP' })
  const untrusting = new Agent()
  t.teardown(() => untrusting.close())
  await t.rejects(request(`${base}/a/x`, { dispatcher: untrusting }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'a client without the CA does not trust it')
})

t.test('mTLS: with ca and requestCert, a client without a certificate, or with one of another CA, is refused', async (t) => {
  const pki = await makeTestPki(t)
  const origin = await startUpstream(t)
  const gw = await startGateway(t, `
server:
  tls: {cert: ${pki.server.cert}, key: ${pki.server.key}, ca: ${pki.ca.cert}, requestCert: true, minVersion: TLSv1.3}
routes:
  - id: a
    prefix: /a
    upstream: ${origin.url}
`)
  const url = `https://127.0.0.1:${gw.port}/a/x`
  const anonymous = httpsClient(pki)
  const stranger = httpsClient(pki, pki.otherClient)
  const known = httpsClient(pki, pki.client)
  t.teardown(async () => { await Promise.all([anonymous.close(), stranger.close(), known.close()]) })
  // The handshake completes before TLS 1.3 checks the client's certificate; the server then drops the connection.
  await t.rejects(request(url, { dispatcher: anonymous }), 'no client certificate: refused')
  await t.rejects(request(url, { dispatcher: stranger }), 'a certificate of another CA: refused')
  const res = await request(url, { dispatcher: known })
  await res.body.dump()
  t.equal(res.statusCode, 200, 'a certificate of the CA: served')
  t.equal(origin.received.length, 1, 'only the verified client reached the upstream')
})

t.test('rotation: replaced files serve new handshakes under load with no failed request; a bad pair is refused, the old one kept', async (t) => {
  const pki = await makeTestPki(t)
  const files = await listenerFiles(pki)
  const origin = await startUpstream(t)
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  const gw = await startGateway(t, `
server:
  tls: {cert: ${files.cert}, key: ${files.key}}
routes:
  - id: a
    prefix: /a
    upstream: ${origin.url}
`, { logger })
  const before = await servedSerial(gw, pki)
  t.equal(before, new (await import('node:crypto')).X509Certificate(pki.server.certPem).serialNumber, 'the configured certificate serves')

  const https = httpsClient(pki)
  t.teardown(() => https.close())
  const run = { stopped: false }
  let failures = 0
  let answered = 0
  const load = Array.from({ length: 8 }, async () => {
    while (!run.stopped) {
      try {
        const res = await request(`https://127.0.0.1:${gw.port}/a/x`, { dispatcher: https })
        await res.body.dump()
        if (res.statusCode === 200) answered++
        else failures++
      } catch {
        failures++
      }
    }
  })
  // As cert-manager does: the key, then the certificate, written in place.
  await writeFile(files.key, pki.serverRotated.keyPem)
  await writeFile(files.cert, pki.serverRotated.certPem)
  const rotated = new (await import('node:crypto')).X509Certificate(pki.serverRotated.certPem).serialNumber
  await waitUntil(async () => await servedSerial(gw, pki) === rotated, 'new handshakes to get the rotated certificate', 10_000)
  run.stopped = true
  await withDeadline(Promise.all(load), 'the load to stop', 10_000)
  t.equal(failures, 0, `no request failed across the rotation (${answered} answered)`)
  t.ok(lines.some((line) => typeof line.msg === 'string' && line.msg.startsWith('TLS certificate reloaded') && line.serialNumber === rotated), 'the reload is logged')

  // A key that is not the certificate's: refused, logged, and the rotated pair keeps serving.
  await writeFile(files.key, pki.client.keyPem)
  await waitUntil(() => lines.some((line) => typeof line.msg === 'string' && line.msg.startsWith('TLS certificate reload refused')), 'the bad pair to be refused', 10_000)
  t.equal(await servedSerial(gw, pki), rotated, 'the previous pair keeps serving')
  const res = await request(`https://127.0.0.1:${gw.port}/a/x`, { dispatcher: https })
  await res.body.dump()
  t.equal(res.statusCode, 200)
})

t.test('config: unreadable files, a key that is not the certificate\'s, requestCert without ca are errors at their key', async (t) => {
  const pki = await makeTestPki(t)
  const config = (tls: string): string => `server:\n  tls: ${tls}\nroutes:\n  - id: a\n    prefix: /a\n    upstream: http://127.0.0.1:9\n`
  const errorsOf = (yaml: string): string[] => {
    try {
      parseConfig(yaml, 'gw.yaml', {})
    } catch (err) {
      if (err instanceof ConfigError) return err.message.split('\n')
      throw err
    }
    return []
  }
  t.match(errorsOf(config(`{cert: ${join(pki.dir, 'missing.crt')}, key: ${pki.server.key}}`)), [/^gw\.yaml:2:\d+ server\.tls\.cert: cannot read ".*missing\.crt": ENOENT$/])
  t.match(errorsOf(config(`{cert: ${pki.server.cert}, key: ${pki.client.key}}`)), [/^gw\.yaml:2:\d+ server\.tls\.key: the certificate and key are not a usable pair: /])
  t.match(errorsOf(config(`{cert: ${pki.server.cert}, key: ${pki.server.key}, requestCert: true}`)), [/^gw\.yaml:2:\d+ server\.tls\.requestCert: requestCert: true needs ca/])
  t.same(errorsOf(config(`{cert: ${pki.server.cert}, key: ${pki.server.key}, ca: ${pki.ca.cert}}`)), [], 'a good set loads')
})
