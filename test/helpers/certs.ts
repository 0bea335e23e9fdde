// Real X.509 material for TLS tests, made by the `openssl` binary in a temporary directory removed in teardown.
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

const OPENSSL_MISSING = 'openssl is not installed: install Debian\'s openssl package (apt-get install openssl)'

/** Each openssl call takes tens of milliseconds; past this something is wrong (a prompt waiting on stdin, say). */
const OPENSSL_TIMEOUT_MS = 10_000

export interface CertPair {
  /** Path of the PEM certificate. */
  readonly cert: string
  /** Path of the PEM private key (unencrypted). */
  readonly key: string
  readonly certPem: string
  readonly keyPem: string
}

export interface TestPki {
  /** The temporary directory holding every file; removed in teardown. */
  readonly dir: string
  /** A self-signed root CA, CN=Breakwater Test CA. */
  readonly ca: CertPair
  /** Signed by `ca`: CN=localhost, SAN DNS:localhost and IP:127.0.0.1, serverAuth, valid for 1 day from now. */
  readonly server: CertPair
  /** Like `server` with its own key and serial: the certificate a rotation swaps in. */
  readonly serverRotated: CertPair
  /** Signed by `ca`: CN=client, clientAuth. */
  readonly client: CertPair
  /** Another self-signed root CA, CN=Breakwater Other Test CA, which `ca` knows nothing of. */
  readonly otherCa: CertPair
  /** Signed by `otherCa`: CN=other-client, clientAuth. */
  readonly otherClient: CertPair
  /** Like `server` but valid only from 2020-01-01 to 2020-01-02 UTC, so it has expired. */
  readonly expired: CertPair
  /** Signed by `ca` for CN=wrong.example with SAN DNS:wrong.example only: matches neither localhost nor 127.0.0.1. */
  readonly wrongName: CertPair
}

interface TapLike { teardown: (fn: () => unknown) => void }

// One config for every command, so the host's openssl.cnf (its req defaults, its v3_ca on every req -x509) plays no part.
// `openssl ca` is only used for `expired`: it is the one signer in OpenSSL 3.0 that takes explicit dates
// (x509 -not_before/-not_after arrived in 3.4; x509 -days -1 gives a notAfter before the notBefore).
const CONFIG = `
[ req ]
distinguished_name = dn
[ dn ]

[ ca ]
default_ca = expired_ca
[ expired_ca ]
database = index.txt
new_certs_dir = issued
certificate = ca.crt
private_key = ca.key
default_md = sha256
# Not the -rand_serial flag: OpenSSL 3.0's ca still demands a serial file with it, but not with this.
rand_serial = yes
policy = any_name
unique_subject = no
copy_extensions = none
[ any_name ]
commonName = supplied

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ wrong_name_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`

// P-256 keys: generated in a millisecond, where RSA-2048 takes tens. -noenc (OpenSSL 3.0's name for -nodes): no passphrase.
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-noenc']

/**
 * Makes a fresh PKI (two CAs and the leaves in TestPki) in a temporary directory removed in teardown: nine openssl runs
 * in two parallel rounds, a few hundred milliseconds. Needs OpenSSL 3.0 or later (`req -x509 -CA`).
 */
export async function makeTestPki (t: TapLike): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-pki-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const openssl = async (args: readonly string[]): Promise<void> => { await runOpenssl(dir, args) }
  await Promise.all([writeFile(join(dir, 'openssl.cnf'), CONFIG), writeFile(join(dir, 'index.txt'), ''), mkdir(join(dir, 'issued'))])

  // A new key and its certificate in one run: self-signed, or (3.0's req -x509 -CA) signed by `caName`. req -x509 picks
  // a random serial, so no two certificates share one.
  const issue = async (name: string, cn: string, extensions: string, caName?: string): Promise<void> => {
    const signer = caName === undefined ? [] : ['-CA', `${caName}.crt`, '-CAkey', `${caName}.key`]
    await openssl(['req', '-x509', ...NEW_KEY, '-config', 'openssl.cnf', '-extensions', extensions, '-subj', `/CN=${cn}`,
      '-days', '1', ...signer, '-keyout', `${name}.key`, '-out', `${name}.crt`])
  }

  await Promise.all([
    issue('ca', 'Breakwater Test CA', 'ca_ext'),
    issue('other-ca', 'Breakwater Other Test CA', 'ca_ext'),
    openssl(['req', '-new', ...NEW_KEY, '-config', 'openssl.cnf', '-subj', '/CN=localhost', '-keyout', 'expired.key', '-out', 'expired.csr'])
  ])
  await Promise.all([
    issue('server', 'localhost', 'server_ext', 'ca'),
    issue('server-rotated', 'localhost', 'server_ext', 'ca'),
    issue('client', 'client', 'client_ext', 'ca'),
    issue('other-client', 'other-client', 'client_ext', 'other-ca'),
    issue('wrong-name', 'wrong.example', 'wrong_name_ext', 'ca'),
    openssl(['ca', '-batch', '-config', 'openssl.cnf', '-extensions', 'server_ext', '-notext',
      '-startdate', '200101000000Z', '-enddate', '200102000000Z', '-in', 'expired.csr', '-out', 'expired.crt'])
  ])

  const pair = async (name: string): Promise<CertPair> => {
    const cert = join(dir, `${name}.crt`)
    const key = join(dir, `${name}.key`)
    const [certPem, keyPem] = await Promise.all([readFile(cert, 'utf8'), readFile(key, 'utf8')])
    return { cert, key, certPem, keyPem }
  }
  const [ca, server, serverRotated, client, otherCa, otherClient, expired, wrongName] = await Promise.all(
    ['ca', 'server', 'server-rotated', 'client', 'other-ca', 'other-client', 'expired', 'wrong-name'].map(pair)
  ) as [CertPair, CertPair, CertPair, CertPair, CertPair, CertPair, CertPair, CertPair]
  return { dir, ca, server, serverRotated, client, otherCa, otherClient, expired, wrongName }
}

/** Runs `openssl ...args` in `cwd`; rejects with its stderr when it fails, and with OPENSSL_MISSING when there is none. */
async function runOpenssl (cwd: string, args: readonly string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { cwd, timeout: OPENSSL_TIMEOUT_MS })
  } catch (err) {
    const error = err as NodeJS.ErrnoException & { stderr?: string }
    if (error.code === 'ENOENT') throw new Error(OPENSSL_MISSING, { cause: err })
    throw new Error(`openssl ${args.join(' ')} failed: ${error.stderr ?? error.message}`, { cause: err })
  }
}
