// The entry format: a binary-safe round trip, stored header fields, and null (a miss) for anything that is not an entry.
import { gzipSync, gunzipSync } from 'node:zlib'
import t from 'tap'
import {
  decodeEntry, encodeEntry, ENTRY_FORMAT_VERSION, storedHeaders, type CacheEntry, type PolicyState
} from '../../../src/cache/index.js'

const policy: PolicyState = {
  v: 1,
  t: 1_735_689_600_000,
  sh: true,
  ch: 0.1,
  imm: 86_400_000,
  rescc: { 'max-age': '60' },
  m: 'GET',
  u: '/items/1',
  h: 'api.example.com',
  a: true,
  reqh: null,
  reqcc: {}
}

const entry = (extra: Partial<CacheEntry> = {}): CacheEntry => ({
  status: 200,
  headers: { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=60', etag: '"v1"' },
  storedAt: 1_735_689_600_000,
  path: '/items/1',
  policy,
  body: Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  ...extra
})

t.test('round trip: every byte value of the body, and the head', async (t) => {
  const original = entry({ headers: { 'x-unicode': 'grüße ✓', 'set-cookie': ['a=1; Path=/', 'b=2'] } })
  const decoded = decodeEntry(encodeEntry(original))
  if (decoded === null) throw new Error('expected an entry')
  t.ok(decoded.body.equals(original.body), 'all 256 byte values survive')
  t.equal(decoded.body.length, 256)
  t.same({ ...decoded, body: null }, { ...original, body: null })
})

t.test('round trip: an empty body and a large one', async (t) => {
  t.equal(decodeEntry(encodeEntry(entry({ body: Buffer.alloc(0) })))?.body.length, 0)
  const large = Buffer.alloc(3 * 1024 * 1024, 0xfe)
  t.ok(decodeEntry(encodeEntry(entry({ body: large })))?.body.equals(large))
})

t.test('a compressed body stays compressed, with its Content-Encoding', async (t) => {
  const gzipped = gzipSync('{"id":1}')
  const decoded = decodeEntry(encodeEntry(entry({ headers: { 'content-encoding': 'gzip' }, body: gzipped })))
  t.ok(decoded?.body.equals(gzipped))
  t.equal(decoded?.headers['content-encoding'], 'gzip')
  t.equal(gunzipSync(decoded?.body ?? Buffer.alloc(0)).toString(), '{"id":1}')
})

t.test('the layout: BW, the version, the head length, the head, the body', async (t) => {
  const value = encodeEntry(entry())
  t.equal(value.toString('latin1', 0, 2), 'BW')
  t.equal(value[2], ENTRY_FORMAT_VERSION)
  const headLength = value.readUInt32BE(3)
  t.equal(value.length, 7 + headLength + 256)
  t.same(JSON.parse(value.toString('utf8', 7, 7 + headLength)).path, '/items/1')
})

t.test('anything that is not an entry of this version decodes as null, never a throw', async (t) => {
  const good = encodeEntry(entry())
  const withByte = (index: number, byte: number): Buffer => {
    const copy = Buffer.from(good)
    copy[index] = byte
    return copy
  }
  const withHead = (head: unknown): Buffer => {
    const json = Buffer.from(JSON.stringify(head))
    const preamble = Buffer.from([0x42, 0x57, ENTRY_FORMAT_VERSION, 0, 0, 0, 0])
    preamble.writeUInt32BE(json.length, 3)
    return Buffer.concat([preamble, json])
  }
  const { body, ...head } = entry()
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['shorter than the preamble', good.subarray(0, 6)],
    ['an invalidation marker', Buffer.from('1735689600000')],
    ['a lock value', Buffer.from('9f8e7d6c')],
    ['another magic', withByte(0, 0x7b)],
    ['another format version', withByte(2, ENTRY_FORMAT_VERSION + 1)],
    ['a head longer than the value', withByte(3, 0xff)],
    ['a cut value', good.subarray(0, 40)],
    ['a head that is not JSON', withHead('x').fill(0x7b, 7)],
    ['a head that is not an object', withHead([1, 2])],
    ['JSON null', withHead(null)],
    ['no status', withHead({ ...head, status: undefined })],
    ['a status out of range', withHead({ ...head, status: 42 })],
    ['a header that is a number', withHead({ ...head, headers: { age: 3 } })],
    ['no storedAt', withHead({ ...head, storedAt: 'yesterday' })],
    ['no path', withHead({ ...head, path: null })],
    ['no policy', withHead({ ...head, policy: null })],
    ['another http-cache-semantics serialization', withHead({ ...head, policy: { ...policy, v: 2 } })],
    ['a policy without its directives', withHead({ ...head, policy: { ...policy, rescc: undefined } })],
    ['a policy with bad request fields', withHead({ ...head, policy: { ...policy, reqh: { cookie: 1 } } })]
  ]
  for (const [name, value] of cases) t.equal(decodeEntry(value), null, name)
  for (let seed = 1; seed <= 200; seed++) {
    const noise = Buffer.from(Array.from({ length: seed * 3 }, (_, i) => (i * 7919 + seed * 104_729) % 256))
    t.equal(decodeEntry(noise), null, `noise ${seed}`)
  }
  t.ok(decodeEntry(withHead(head)), 'the same head with an empty body decodes')
  t.equal(body.length, 256)
})

t.test('storedHeaders drops hop-by-hop fields and joins repeated ones', async (t) => {
  const headers = storedHeaders({
    'Content-Type': 'text/plain',
    connection: ['keep-alive', 'X-Trace'],
    'keep-alive': 'timeout=5',
    'transfer-encoding': 'chunked',
    te: 'trailers',
    trailer: 'x-checksum',
    upgrade: 'h2c',
    'proxy-authenticate': 'Basic',
    'proxy-connection': 'keep-alive',
    'x-trace': 'abc',
    'cache-control': ['max-age=60', 'public'],
    'set-cookie': ['a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT', 'b=2'],
    'x-absent': undefined
  })
  t.same(headers, {
    'content-type': 'text/plain',
    'cache-control': 'max-age=60, public',
    'set-cookie': ['a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT', 'b=2']
  })
})
