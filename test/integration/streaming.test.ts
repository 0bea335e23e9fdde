// Bodies stream both ways and are never buffered whole: 100 MB each way through a gateway in its own process, whose peak RSS is watched.
import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as delay } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { Agent, request } from 'undici'
import { procStatusBytes, resetPeakRss, startCli, writeConfig, type RunningGateway } from '../helpers/cli.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

const MB = 1024 * 1024
const PAYLOAD_BYTES = 100 * MB
const CHUNK_BYTES = 64 * 1024
/**
 * How much the gateway's peak RSS may grow over its RSS before a transfer. Streaming measured 15-45 MB (spent chunks
 * wait for V8's external-memory GC trigger); the gateway patched to buffer the body whole measured 195-250 MB, and
 * patched to hold every chunk in a list 90-170 MB.
 */
const MAX_RSS_GROWTH = 80 * MB

/** A deterministic payload of `bytes`, generated chunk by chunk; each chunk is numbered so a reordering changes the hash. */
async function * payload (bytes: number): AsyncGenerator<Buffer> {
  const base = Buffer.alloc(CHUNK_BYTES)
  for (let i = 0; i < CHUNK_BYTES; i++) base[i] = (i * 31 + 7) & 0xff
  for (let offset = 0, n = 0; offset < bytes; offset += CHUNK_BYTES, n++) {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, bytes - offset))
    base.copy(chunk, 0, 0, chunk.length)
    chunk.writeUInt32BE(n, 0)
    yield chunk
  }
}

async function expectedDigest (bytes: number): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of payload(bytes)) hash.update(chunk)
  return hash.digest('hex')
}

/** Waits until the gateway's peak RSS has not moved for 300 ms (background compiles done); throws past 5 s. */
async function steadyPeak (pid: number): Promise<void> {
  const deadline = Date.now() + 5_000
  let peak = await procStatusBytes(pid, 'VmHWM')
  let stableSince = Date.now()
  while (Date.now() - stableSince < 300) {
    if (Date.now() > deadline) throw new Error('the gateway RSS did not settle within 5 s')
    await delay(50)
    const now = await procStatusBytes(pid, 'VmHWM')
    if (now !== peak) {
      peak = now
      stableSince = Date.now()
    }
  }
}

/** Resets the gateway's peak RSS to its current RSS and returns it: a later VmHWM is the peak since this call. */
async function baselineRss (pid: number): Promise<number> {
  await resetPeakRss(pid)
  return await procStatusBytes(pid, 'VmHWM')
}

/** Counts and hashes a stream as it passes, keeping none of it. */
async function tally (source: AsyncIterable<Buffer>): Promise<{ bytes: number, digest: string }> {
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of source) {
    bytes += chunk.length
    hash.update(chunk)
  }
  return { bytes, digest: hash.digest('hex') }
}

interface Setup { origin: Upstream, gw: RunningGateway, dispatcher: Agent, uploads: Array<Promise<{ bytes: number, digest: string }>> }

async function setup (t: Test): Promise<Setup> {
  const uploads: Array<Promise<{ bytes: number, digest: string }>> = []
  // buffer: false: the origin counts what it receives and keeps none of it.
  const origin = await startUpstream(t, (req, res) => {
    if (req.url?.startsWith('/download') === true) {
      const bytes = Number(new URL(req.url, 'http://origin').searchParams.get('bytes') ?? PAYLOAD_BYTES)
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes) })
      pipeline(Readable.from(payload(bytes)), res).catch(() => {})
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end('stored')
  }, { buffer: false })
  // A second reader hashes uploads as they arrive, beside startUpstream's own byte count.
  origin.server.on('request', (req: IncomingMessage) => { if (req.url === '/upload') uploads.push(tally(req)) })

  const file = await writeConfig(t, `
server:
  host: 127.0.0.1
  port: 0
  accessLog: false
routes:
  - id: files
    prefix: /
    bodyLimit: 200mb
    timeout: 30s
    upstream: ${origin.url}
`)
  const gw = await startCli(t, file)
  const dispatcher = new Agent()
  t.teardown(() => dispatcher.close())
  // Warm-up traffic both ways: V8 tiers undici's llhttp WebAssembly up once it is hot, and that compile briefly takes
  // some 30 MB; it must happen before the measured transfer, not during it.
  await (await request(`${gw.url}/download?bytes=${MB}`, { dispatcher })).body.dump()
  await (await request(`${gw.url}/warm`, { dispatcher, method: 'POST', body: Readable.from(payload(MB)) })).body.dump()
  await steadyPeak(gw.pid)
  return { origin, gw, dispatcher, uploads }
}

t.test('a 100 MB download passes byte-exact without the gateway buffering it', async (t) => {
  const { gw, dispatcher } = await setup(t)
  const expected = await expectedDigest(PAYLOAD_BYTES)
  const baseline = await baselineRss(gw.pid)
  const res = await request(`${gw.url}/download`, { dispatcher })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-length'], String(PAYLOAD_BYTES))
  const got = await tally(res.body)
  t.equal(got.bytes, PAYLOAD_BYTES, 'every byte arrived')
  t.equal(got.digest, expected, 'in order and unchanged')
  const peak = await procStatusBytes(gw.pid, 'VmHWM')
  t.ok(peak - baseline < MAX_RSS_GROWTH, `peak RSS grew ${((peak - baseline) / MB).toFixed(1)} MB over ${(baseline / MB).toFixed(1)} MB (limit ${MAX_RSS_GROWTH / MB} MB)`)
})

t.test('a 100 MB upload, with a length or chunked, passes byte-exact without the gateway buffering it', async (t) => {
  const { origin, gw, dispatcher, uploads } = await setup(t)
  const expected = await expectedDigest(PAYLOAD_BYTES)
  const baseline = await baselineRss(gw.pid)

  const fixed = await request(`${gw.url}/upload`, {
    dispatcher, method: 'PUT', headers: { 'content-length': String(PAYLOAD_BYTES) }, body: Readable.from(payload(PAYLOAD_BYTES))
  })
  t.equal(fixed.statusCode, 200)
  t.equal(await fixed.body.text(), 'stored')
  const chunked = await request(`${gw.url}/upload`, { dispatcher, method: 'POST', body: Readable.from(payload(PAYLOAD_BYTES)) })
  t.equal(chunked.statusCode, 200)
  t.equal(await chunked.body.text(), 'stored')

  const seen = await Promise.all(uploads)
  t.same(seen.map((upload) => upload.bytes), [PAYLOAD_BYTES, PAYLOAD_BYTES], 'every byte arrived, both ways of framing')
  t.same(seen.map((upload) => upload.digest), [expected, expected], 'in order and unchanged')
  t.equal(origin.received.at(-1)?.headers['transfer-encoding'], 'chunked')
  const peak = await procStatusBytes(gw.pid, 'VmHWM')
  t.ok(peak - baseline < MAX_RSS_GROWTH, `peak RSS grew ${((peak - baseline) / MB).toFixed(1)} MB over ${(baseline / MB).toFixed(1)} MB (limit ${MAX_RSS_GROWTH / MB} MB)`)
})
