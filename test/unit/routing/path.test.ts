// Dot-segment resolution (RFC 3986 section 5.2.4) and Host parsing, as routing uses them.
import t from 'tap'
import { hostName, resolveDotSegments } from '../../../src/routing/index.js'

t.test('paths without dot segments come back unchanged', async (t) => {
  for (const path of ['/', '/api/catalog', '/a/b/', '/file.json', '/a..b/c.', '/%41bc', '/a%2fb']) {
    t.equal(resolveDotSegments(path), path, path)
  }
})

t.test('. and .. segments, literal or percent-encoded in any case, are resolved', async (t) => {
  const cases: Array<[string, string]> = [
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/%2e/b', '/a/b'],
    ['/a/%2E%2e/b', '/b'],
    ['/a/.%2e/b', '/b'],
    ['/a/%2e./b', '/b'],
    ['/a/b/c/../../d', '/a/d'],
    ['/..a/b', '/..a/b'],
    ['/a/..', '/'],
    ['/.', '/']
  ]
  for (const [path, resolved] of cases) t.equal(resolveDotSegments(path), resolved, path)
})

t.test('a .. that climbs above the root is refused', async (t) => {
  for (const path of ['/..', '/../a', '/a/../..', '/%2e%2e', '/a/%2E%2E/%2e%2e/b']) {
    t.equal(resolveDotSegments(path), null, path)
  }
})

t.test('hostName lower-cases and drops the port, IPv6 literals included', async (t) => {
  t.equal(hostName('API.Example.com:8080'), 'api.example.com')
  t.equal(hostName('api.example.com'), 'api.example.com')
  t.equal(hostName('[::1]:8080'), '[::1]')
  t.equal(hostName('[::1]'), '[::1]')
  t.equal(hostName(undefined), undefined)
})
