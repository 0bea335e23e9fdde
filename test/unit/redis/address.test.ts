// A Redis URL read into host, port and the autoscaler's host:port, the way every client and the autoscaler read it.
import t from 'tap'
import { DEFAULT_REDIS_PORT, parseRedisAddress } from '../../../src/redis/index.js'

t.test('host and port, 6379 when the URL names none, credentials left on the URL', async (t) => {
  const plain = parseRedisAddress('redis://cache.internal')
  t.match(plain, { host: 'cache.internal', port: DEFAULT_REDIS_PORT, address: 'cache.internal:6379' })
  const tls = parseRedisAddress('rediss://user:secret@10.0.0.5:7001/2')
  t.match(tls, { host: '10.0.0.5', port: 7001, address: '10.0.0.5:7001' })
  t.equal(tls?.url.password, 'secret')
})

t.test('an IPv6 host: bare for a socket, in brackets in the address', async (t) => {
  t.match(parseRedisAddress('redis://[::1]:7000'), { host: '::1', port: 7000, address: '[::1]:7000' })
})

t.test('null for anything but a redis:// or rediss:// URL; a URL without a host is the caller\'s to refuse', async (t) => {
  t.equal(parseRedisAddress('http://10.0.0.5:6379'), null)
  t.equal(parseRedisAddress('10.0.0.5:6379'), null)
  t.equal(parseRedisAddress('not a url'), null)
  t.equal(parseRedisAddress('redis://')?.host, '')
})
