// The listener's TLS: its options from the certificate, key and CA files, and their rotation. cert-manager and other
// tools replace the files in place; the new pair is checked and swapped in for new handshakes, without a restart or
// a dropped connection, and a bad pair is refused with a log line while the old one keeps serving.
import { readFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { createSecureContext, type SecureContextOptions, type TlsOptions } from 'node:tls'
import type { Server as HttpsServer } from 'node:https'
import { X509Certificate } from 'node:crypto'
import { watchConfigFile, type ConfigWatcher, type ServerTlsConfig } from '../config/index.js'

/** The files' contents as Node's TLS takes them. */
function contextOptions (cert: string, key: string, ca: string | null): SecureContextOptions {
  return ca === null ? { cert, key } : { cert, key, ca }
}

/** The listener's TLS options at the start (the config loader has checked the files). */
export function listenerTlsOptions (tls: ServerTlsConfig): TlsOptions {
  const ca = tls.caFile === null ? null : readFileSync(tls.caFile, 'utf8')
  return {
    ...contextOptions(readFileSync(tls.certFile, 'utf8'), readFileSync(tls.keyFile, 'utf8'), ca),
    minVersion: tls.minVersion,
    // With a CA, clients are asked for a certificate; requestCert: true refuses those without one that it verifies.
    requestCert: tls.caFile !== null,
    rejectUnauthorized: tls.caFile !== null && tls.requestCert
  }
}

export interface TlsRotationLog {
  info: (fields: object, message: string) => void
  error: (fields: object, message: string) => void
}

/**
 * Watches the certificate, key and CA files and swaps a changed, valid set into `server` for new handshakes.
 * Connections already open keep the certificate they were made with.
 */
export function rotateListenerTls (server: HttpsServer, tls: ServerTlsConfig, log: TlsRotationLog): ConfigWatcher {
  let applying = Promise.resolve()
  const apply = async (): Promise<void> => {
    try {
      const [cert, key, ca] = await Promise.all([
        readFile(tls.certFile, 'utf8'),
        readFile(tls.keyFile, 'utf8'),
        tls.caFile === null ? null : readFile(tls.caFile, 'utf8')
      ])
      const options = contextOptions(cert, key, ca)
      // Refused here, not by the server: setSecureContext would throw only for some faults, and keep nothing usable.
      createSecureContext(options)
      server.setSecureContext(options)
      const leaf = new X509Certificate(cert)
      log.info({ cert: tls.certFile, subject: leaf.subject, serialNumber: leaf.serialNumber, validTo: leaf.validTo },
        `TLS certificate reloaded from ${tls.certFile}: new handshakes get serial ${leaf.serialNumber}, valid to ${leaf.validTo}`)
    } catch (err) {
      log.error({ err, cert: tls.certFile, key: tls.keyFile },
        `TLS certificate reload refused: ${(err as Error).message}; the previous certificate keeps serving`)
    }
  }
  const changed = (): void => { applying = applying.then(apply) }
  const files = [tls.certFile, tls.keyFile, ...(tls.caFile === null ? [] : [tls.caFile])]
  const watchers = files.map((file) => watchConfigFile(file, changed))
  return { close: () => { for (const watcher of watchers) watcher.close() } }
}
