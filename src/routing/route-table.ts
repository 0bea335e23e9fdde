// The route table: longest segment-boundary prefix wins, then host, then method; pure, no I/O.
import { HTTP_METHODS, type RouteConfig } from '../config/index.js'

/** What a request resolves to: a route and the path to forward, or why there is none. */
export type RouteMatch<R> =
  | { readonly kind: 'route', readonly route: R, readonly upstreamPath: string }
  | { readonly kind: 'not-found' }
  /** `route`: the one of the longest prefix that serves the host but not the method, as problem bodies name it. */
  | { readonly kind: 'method-not-allowed', readonly allow: string, readonly route: R }

type Matchable = Pick<RouteConfig, 'prefix' | 'host' | 'methods' | 'rewritePrefix'>

interface Entry<R> {
  readonly route: R
  readonly host: string | null
  readonly methods: ReadonlySet<string> | null
  /** How much of the path the prefix covers; 0 for `/`, which keeps its leading slash. */
  readonly stripLength: number
  readonly rewritePrefix: string | null
}

export class RouteTable<R extends Matchable> {
  readonly #byPrefix = new Map<string, Array<Entry<R>>>()

  constructor (routes: readonly R[]) {
    for (const route of routes) {
      const entries = this.#byPrefix.get(route.prefix) ?? []
      entries.push({
        route,
        host: route.host,
        methods: route.methods === null ? null : new Set(route.methods),
        stripLength: route.prefix === '/' ? 0 : route.prefix.length,
        rewritePrefix: route.rewritePrefix
      })
      // Within one prefix the most specific entry answers first: a named host, then a method list.
      entries.sort((a, b) => Number(b.host !== null) - Number(a.host !== null) || Number(b.methods !== null) - Number(a.methods !== null))
      this.#byPrefix.set(route.prefix, entries)
    }
  }

  /**
   * Matches a resolved path. A prefix whose routes serve the host but not the method falls through to
   * shorter prefixes, as Envoy tries its routes in turn; only when none serves it is the answer 405.
   */
  match (method: string, host: string | undefined, path: string): RouteMatch<R> {
    let allow: Set<string> | null = null
    let refusing: R | null = null
    let candidate = path
    for (;;) {
      const entries = this.#byPrefix.get(candidate)
      if (entries !== undefined) {
        for (const entry of entries) {
          if (entry.host !== null && entry.host !== host) continue
          if (entry.methods === null || entry.methods.has(method)) {
            return { kind: 'route', route: entry.route, upstreamPath: rewrite(entry, path) }
          }
          if (allow === null) {
            allow = new Set()
            refusing = entry.route
          }
          for (const allowed of entry.methods) allow.add(allowed)
        }
      }
      if (candidate === '/') break
      const cut = candidate.lastIndexOf('/')
      candidate = cut === 0 ? '/' : candidate.slice(0, cut)
    }
    if (allow === null) return { kind: 'not-found' }
    return { kind: 'method-not-allowed', allow: HTTP_METHODS.filter((m) => allow.has(m)).join(', '), route: refusing as R }
  }
}

function rewrite<R> (entry: Entry<R>, path: string): string {
  if (entry.rewritePrefix === null) return path
  const rewritten = entry.rewritePrefix + path.slice(entry.stripLength)
  return rewritten === '' ? '/' : rewritten
}
