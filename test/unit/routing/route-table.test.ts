// The route table: segment-boundary longest prefix, host and method precedence, 405 with Allow, rewrites.
import t from 'tap'
import type { HttpMethod, RouteConfig } from '../../../src/config/index.js'
import { RouteTable } from '../../../src/routing/index.js'

type Rule = Pick<RouteConfig, 'prefix' | 'host' | 'methods' | 'rewritePrefix'> & { id: string }

const rule = (id: string, prefix: string, extra: Partial<Rule> = {}): Rule =>
  ({ id, prefix, host: null, methods: null, rewritePrefix: null, ...extra })

const matchedId = (table: RouteTable<Rule>, method: string, path: string, host?: string): string => {
  const match = table.match(method, host, path)
  return match.kind === 'route' ? match.route.id : match.kind
}

t.test('the longest prefix on a segment boundary wins', async (t) => {
  const table = new RouteTable([rule('root', '/'), rule('api', '/api'), rule('catalog', '/api/catalog')])
  t.equal(matchedId(table, 'GET', '/api/catalog'), 'catalog')
  t.equal(matchedId(table, 'GET', '/api/catalog/'), 'catalog')
  t.equal(matchedId(table, 'GET', '/api/catalog/items/1'), 'catalog')
  t.equal(matchedId(table, 'GET', '/api/catalogue'), 'api')
  t.equal(matchedId(table, 'GET', '/apis'), 'root')
  t.equal(matchedId(table, 'GET', '/'), 'root')
})

t.test('no route: not-found', async (t) => {
  const table = new RouteTable([rule('api', '/api')])
  t.equal(matchedId(table, 'GET', '/'), 'not-found')
  t.equal(matchedId(table, 'GET', '/ap'), 'not-found')
})

t.test('a named host wins over any host on the same prefix; other hosts fall back', async (t) => {
  const table = new RouteTable([rule('any', '/app'), rule('acme', '/app', { host: 'acme.example.com' })])
  t.equal(matchedId(table, 'GET', '/app/x', 'acme.example.com'), 'acme')
  t.equal(matchedId(table, 'GET', '/app/x', 'other.example.com'), 'any')
  t.equal(matchedId(table, 'GET', '/app/x'), 'any')
})

t.test('a method list wins over all methods on the same prefix', async (t) => {
  const table = new RouteTable([rule('all', '/x'), rule('reads', '/x', { methods: ['GET'] })])
  t.equal(matchedId(table, 'GET', '/x'), 'reads')
  t.equal(matchedId(table, 'POST', '/x'), 'all')
})

t.test('an unserved method falls through to shorter prefixes, and is 405 with Allow when none serves it', async (t) => {
  const methods: HttpMethod[] = ['HEAD', 'GET']
  const table = new RouteTable([
    rule('reads', '/api/catalog', { methods }),
    rule('writes', '/api/catalog', { methods: ['POST'] }),
    rule('deletes', '/api', { methods: ['DELETE'] })
  ])
  t.equal(matchedId(table, 'DELETE', '/api/catalog/1'), 'deletes')
  const refused = table.match('PUT', undefined, '/api/catalog/1')
  t.same(refused, { kind: 'method-not-allowed', allow: 'GET, HEAD, POST, DELETE', route: rule('reads', '/api/catalog', { methods }) },
    'Allow lists every method the path serves, in a stable order; the route is the first of the longest prefix')
  const shorter = table.match('PUT', undefined, '/api/other')
  t.equal(shorter.kind === 'method-not-allowed' ? shorter.route.id : shorter.kind, 'deletes', 'only a prefix that matched can be the route')
})

t.test('a 405 names the named-host route before the any-host one of the same prefix', async (t) => {
  const table = new RouteTable([rule('any', '/x', { methods: ['GET'] }), rule('acme', '/x', { host: 'acme.example.com', methods: ['GET'] })])
  const refused = table.match('POST', 'acme.example.com', '/x')
  t.equal(refused.kind === 'method-not-allowed' ? refused.route.id : refused.kind, 'acme')
})

t.test('a route for another host does not make a path 405', async (t) => {
  const table = new RouteTable([rule('acme', '/x', { host: 'acme.example.com', methods: ['GET'] })])
  t.equal(matchedId(table, 'POST', '/x', 'other.example.com'), 'not-found')
})

t.test('rewritePrefix replaces the prefix; "" strips it; the root prefix keeps its slash', async (t) => {
  const table = new RouteTable([
    rule('catalog', '/api/catalog', { rewritePrefix: '/catalog' }),
    rule('strip', '/strip', { rewritePrefix: '' }),
    rule('root', '/', { rewritePrefix: '/v2' }),
    rule('plain', '/plain')
  ])
  const upstreamPath = (path: string): string => {
    const match = table.match('GET', undefined, path)
    return match.kind === 'route' ? match.upstreamPath : match.kind
  }
  t.equal(upstreamPath('/api/catalog/items/2'), '/catalog/items/2')
  t.equal(upstreamPath('/api/catalog'), '/catalog')
  t.equal(upstreamPath('/strip/a/b'), '/a/b')
  t.equal(upstreamPath('/strip'), '/')
  t.equal(upstreamPath('/other'), '/v2/other')
  t.equal(upstreamPath('/plain/x'), '/plain/x')
})
