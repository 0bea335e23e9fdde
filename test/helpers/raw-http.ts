// Raw HTTP/1.1 over a socket, for requests a well-behaved client library refuses to send.
import { connect } from 'node:net'

export interface RawResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  /** Everything the server sent before it closed the connection. */
  readonly text: string
}

/** Writes `text` to 127.0.0.1:`port`, reads until the server closes (or `timeoutMs`), parses the first response. */
export async function rawRequest (port: number, text: string, timeoutMs = 5_000): Promise<RawResponse> {
  const socket = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.write(text)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no close from the server within ${timeoutMs} ms; got: ${Buffer.concat(chunks).toString('latin1')}`))
    }, timeoutMs)
    socket.on('close', () => { clearTimeout(timer); resolve() })
    socket.on('error', () => {})
  })
  return parseResponse(Buffer.concat(chunks).toString('latin1'))
}

export function parseResponse (text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n')
  const head = end === -1 ? text : text.slice(0, end)
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body: end === -1 ? '' : text.slice(end + 4), text }
}
