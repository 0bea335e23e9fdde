// Bulk item parsing without a server: which Content-Type and Content-Encoding carry an item, and which bodies are one JSON value.
import t from 'tap'
import { contentTypeRefusal, itemOf } from '../../../src/bulk/index.js'

t.test('contentTypeRefusal: JSON media types in UTF-8, uncompressed, carry an item', async (t) => {
  for (const type of ['application/json', 'Application/JSON', 'application/json; charset=utf-8', 'application/json;charset="UTF-8"', 'application/merge-patch+json', 'application/vnd.acme.event+json']) {
    t.equal(contentTypeRefusal(type, undefined), null, type)
  }
  t.equal(contentTypeRefusal('application/json', 'identity'), null, 'identity is no encoding')
  t.equal(contentTypeRefusal('application/json', ' Identity '), null, 'the coding name is case-insensitive')
})

t.test('contentTypeRefusal: anything else says why', async (t) => {
  t.equal(contentTypeRefusal(undefined, undefined), 'send the item with Content-Type: application/json')
  t.equal(contentTypeRefusal('text/plain', undefined), 'expected Content-Type application/json, got text/plain')
  t.equal(contentTypeRefusal('application/x-ndjson', undefined), 'expected Content-Type application/json, got application/x-ndjson')
  t.equal(contentTypeRefusal('application/json; charset=latin1', undefined), 'JSON is UTF-8 (RFC 8259 section 8.1), got application/json; charset=latin1')
  t.equal(contentTypeRefusal('application/json', 'gzip'), 'the gateway does not decode Content-Encoding gzip: send the item uncompressed')
})

t.test('itemOf: one JSON value, its bytes without surrounding whitespace', async (t) => {
  const body = Buffer.from(' \t\r\n{"n": 1}\n')
  const item = itemOf(body, 'json-array')
  t.ok(Buffer.isBuffer(item))
  t.equal(item.toString(), '{"n": 1}')
  t.equal((item as Buffer).buffer, body.buffer, 'a view of the body, not a copy')
  t.equal(itemOf(Buffer.from('"a\\nb"'), 'ndjson').toString(), '"a\\nb"', 'an escaped line break is inside a string')
  t.equal(itemOf(Buffer.from('{\n"n": 1\n}'), 'json-array').toString(), '{\n"n": 1\n}', 'json-array items may span lines')
})

t.test('itemOf: anything else says why', async (t) => {
  t.equal(itemOf(Buffer.alloc(0), 'json-array'), 'the body is empty: an item is one JSON value')
  t.equal(itemOf(Buffer.from(' \r\n\t'), 'ndjson'), 'the body is empty: an item is one JSON value')
  t.match(itemOf(Buffer.from('{"n":'), 'json-array'), /^the body is not JSON: /)
  t.match(itemOf(Buffer.from('{"n":1} {"n":2}'), 'json-array'), /^the body is not JSON: /, 'two values are not one item')
  t.equal(itemOf(Buffer.from('{\n"n": 1\n}'), 'ndjson'), 'an ndjson item must be on one line: send it without line breaks')
  t.equal(itemOf(Buffer.from('{"n":\r1}'), 'ndjson'), 'an ndjson item must be on one line: send it without line breaks')
})
