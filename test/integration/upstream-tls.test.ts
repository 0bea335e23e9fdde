// TLS toward https upstreams: a CA of the route's own, a client certificate (mTLS), the name verified, and a 502 of
// its own type for each way the handshake fails, counted by the breaker.
import { once } from 'node:events'
import { createServer, type ServerOptions } from 'node:https'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { request } from 'undici'
import { makeTestPki, type CertPair } from '../helpers/certs.js'
import { startGateway } from '../helpers/gateway.js'

/** An https origin on 127.0.0.1 presenting `pair`, answering 200 `tls ok` (with the client certificate's CN when one came). */
async function startHttpsUpstream (t: Test, pair: CertPair, options: ServerOptions = {}): Promise<string> {
  const server = createServer({ cert: pair.certPem, key: pair.keyPem, ...options }, (req, res) => {
    const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate()
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(`tls ok${peer.subject?.CN === undefined ? '' : ` for ${peer.subject.CN}`}`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) }))
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function get (url: string): Promise<{ status: number, body: string }> {
  const res = await request(url)
  return { status: res.statusCode, body: await res.body.text() }
}

t.test('a route trusts its upstream through upstreamTls.ca; without it the answer is a 502 of its own type', async (t) => {
  const pki = await makeTestPki(t)
  const origin = await startHttpsUpstream(t, pki.server)
  const gw = await startGateway(t, `
routes:
  - id: trusted
    prefix: /trusted
    upstream: ${origin}
    upstreamTls: {ca: ${pki.ca.cert}}
  - id: only-ca
    prefix: /only-ca
    upstream: ${origin}
    upstreamTls: {ca: ${pki.ca.cert}, systemCa: false}
  - id: untrusted
    prefix: /untrusted
    upstream: ${origin}
    breaker: {failureThreshold: 2, recoveryTimeout: 1h}
`)
  t.same(await get(`${gw.url}/trusted/x`), { status: 200, body: 'tls ok' })
  t.same(await get(`${gw.url}/only-ca/x`), { status: 200, body: 'tls ok' }, 'systemCa: false with the CA')
  const untrusted = await get(`${gw.url}/untrusted/x`)
  t.equal(untrusted.status, 502)
  t.match(JSON.parse(untrusted.body), { code: 'BW_ERR_UPSTREAM_TLS_UNTRUSTED', route: 'untrusted', detail: /not signed by a trusted CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/ })
  t.equal((await get(`${gw.url}/untrusted/x`)).status, 502)
  const open = await get(`${gw.url}/untrusted/x`)
  t.equal(open.status, 503, 'the breaker counted both TLS failures and opened')
})

t.test('each TLS failure toward an upstream has its own 502 type and log line', async (t) => {
  const pki = await makeTestPki(t)
  const wrongName = await startHttpsUpstream(t, pki.wrongName)
  const expired = await startHttpsUpstream(t, pki.expired)
  const needsClient = await startHttpsUpstream(t, pki.server, { ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true })
  // An https URL whose server speaks plain HTTP: no TLS handshake can complete.
  const plain = (await import('node:http')).createServer((_req, res) => { res.end('plain') })
  plain.listen(0, '127.0.0.1')
  await once(plain, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { plain.closeAllConnections(); plain.close(() => { resolve() }) }))
  const plainPort = (plain.address() as AddressInfo).port
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  const gw = await startGateway(t, `
defaults:
  upstreamTls: {ca: ${pki.ca.cert}}
routes:
  - id: wrong-name
    prefix: /wrong-name
    upstream: ${wrongName}
  - id: renamed
    prefix: /renamed
    upstream: ${wrongName}
    upstreamTls: {ca: ${pki.ca.cert}, servername: wrong.example}
  - id: expired
    prefix: /expired
    upstream: ${expired}
  - id: anonymous
    prefix: /anonymous
    upstream: ${needsClient}
  - id: client
    prefix: /client
    upstream: ${needsClient}
    upstreamTls: {ca: ${pki.ca.cert}, cert: ${pki.client.cert}, key: ${pki.client.key}}
  - id: plaintext
    prefix: /plaintext
    upstream: https://127.0.0.1:${plainPort}
  - id: unverified
    prefix: /unverified
    upstream: ${expired}
    upstreamTls: {rejectUnauthorized: false}
`, { logger })
  const codeOf = async (path: string): Promise<string> => {
    const answer = await get(`${gw.url}${path}`)
    t.equal(answer.status, 502, `${path}: 502`)
    return (JSON.parse(answer.body) as { code: string }).code
  }
  t.equal(await codeOf('/wrong-name/x'), 'BW_ERR_UPSTREAM_TLS_NAME_MISMATCH')
  t.same(await get(`${gw.url}/renamed/x`), { status: 200, body: 'tls ok' }, 'servername: verified for the name it sets')
  t.equal(await codeOf('/expired/x'), 'BW_ERR_UPSTREAM_TLS_EXPIRED')
  t.equal(await codeOf('/plaintext/x'), 'BW_ERR_UPSTREAM_TLS_HANDSHAKE', 'no handshake with a server that does not speak TLS')
  const anonymous = await get(`${gw.url}/anonymous/x`)
  t.equal(anonymous.status, 502, 'an upstream that requires a client certificate refuses the gateway without one')
  t.same(await get(`${gw.url}/client/x`), { status: 200, body: 'tls ok for client' }, 'mTLS: the route presents its client certificate')
  t.same(await get(`${gw.url}/unverified/x`), { status: 200, body: 'tls ok' }, 'rejectUnauthorized: false accepts what is not verified')
  for (const code of ['BW_ERR_UPSTREAM_TLS_NAME_MISMATCH', 'BW_ERR_UPSTREAM_TLS_EXPIRED']) {
    t.ok(lines.some((line) => (line.err as { code?: string } | undefined)?.code !== undefined && typeof line.msg === 'string' && line.route !== undefined &&
      line.msg.includes(code === 'BW_ERR_UPSTREAM_TLS_EXPIRED' ? 'expired' : 'another name')), `${code}: logged, saying which`)
  }
  t.ok(lines.some((line) => line.level === 40 && typeof line.msg === 'string' && line.msg.includes('rejectUnauthorized: false')), 'rejectUnauthorized: false is warned of at the start')
})

t.test('upstreamTls files are checked at load: unreadable, a cert without its key, a key that is not the certificate\'s', async (t) => {
  const pki = await makeTestPki(t)
  const { parseConfig, ConfigError } = await import('../../src/config/index.js')
  const errorsOf = (tls: string): string[] => {
    try {
      parseConfig(`routes:\n  - id: a\n    prefix: /a\n    upstream: https://127.0.0.1:9\n    upstreamTls: ${tls}\n`, 'gw.yaml', {})
    } catch (err) {
      if (err instanceof ConfigError) return err.message.split('\n')
      throw err
    }
    return []
  }
  t.match(errorsOf(`{ca: ${pki.dir}/missing.crt}`), [/^gw\.yaml:5:\d+ routes\[0\]\.upstreamTls\.ca: cannot read ".*missing\.crt": ENOENT$/])
  t.match(errorsOf(`{cert: ${pki.client.cert}}`), [/^gw\.yaml:5:\d+ routes\[0\]\.upstreamTls: expected cert and key together/])
  t.match(errorsOf(`{cert: ${pki.client.cert}, key: ${pki.server.key}}`), [/^gw\.yaml:5:\d+ routes\[0\]\.upstreamTls\.key: the certificate and key are not a usable pair/])
  t.same(errorsOf(`{ca: ${pki.ca.cert}, cert: ${pki.client.cert}, key: ${pki.client.key}, servername: api.internal}`), [])
})

t.test('upstreamHttp2: the route speaks HTTP/2 to an https upstream that offers it; HTTP/1.1 otherwise', async (t) => {
  const pki = await makeTestPki(t)
  const { createSecureServer } = await import('node:http2')
  const versions: string[] = []
  const server = createSecureServer({ cert: pki.server.certPem, key: pki.server.keyPem, allowHTTP1: true }, (req, res) => {
    versions.push(req.httpVersion)
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(`over ${req.httpVersion}`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { server.close(() => { resolve() }) }))
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  const gw = await startGateway(t, `
defaults:
  upstreamTls: {ca: ${pki.ca.cert}}
routes:
  - id: h2
    prefix: /h2
    upstream: ${origin}
    upstreamHttp2: true
  - id: h1
    prefix: /h1
    upstream: ${origin}
`)
  t.same(await get(`${gw.url}/h2/x`), { status: 200, body: 'over 2.0' })
  t.same(await get(`${gw.url}/h1/x`), { status: 200, body: 'over 1.1' })
  // The gateway's pools stay open on the upstream's sessions; close them with the gateway before the server.
  await gw.app.close()
  t.same(versions, ['2.0', '1.1'])
})
