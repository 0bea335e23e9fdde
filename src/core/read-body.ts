// Reading a body whole, up to a limit: a bulk item from its client, an answer the gateway fetched for itself.
import type { Readable } from 'node:stream'

/**
 * Hands `done` the body as one buffer; null once it passes `limit` bytes (the rest is left unread: the caller closes
 * the stream or its connection); or the error that cut it, a stream closed before its end included.
 */
export function readBody (stream: Readable, limit: number, done: (err: Error | null, body: Buffer | null) => void): void {
  const chunks: Buffer[] = []
  let bytes = 0
  // Listeners, not an async iterator: measured, the iterator's promises and ticks cost more than the rest of a bulk write.
  const finish = (err: Error | null, body: Buffer | null): void => {
    stream.off('data', onData)
    stream.off('end', onEnd)
    stream.off('error', onError)
    stream.off('close', onClose)
    done(err, body)
  }
  const onData = (chunk: Buffer): void => {
    bytes += chunk.length
    if (bytes > limit) finish(null, null)
    else chunks.push(chunk)
  }
  const onEnd = (): void => { finish(null, chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, bytes)) }
  const onError = (err: Error): void => { finish(err, null) }
  // 'close' after 'end' never gets here: `finish` removed this listener.
  const onClose = (): void => { finish(new Error('the stream closed before the end of the body'), null) }
  stream.on('data', onData)
  stream.on('end', onEnd)
  stream.on('error', onError)
  stream.on('close', onClose)
}
