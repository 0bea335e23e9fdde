// Request paths as routing sees them: dot segments resolved once (RFC 3986 section 5.2.4), as nginx and Envoy do.

/** A segment that is `.` or `..`, literally or percent-encoded (`%2e`, `.%2E`, ...). */
function dotSegmentKind (segment: string): 0 | 1 | 2 {
  switch (segment.length) {
    case 1: return segment === '.' ? 1 : 0
    case 2: return segment === '..' ? 2 : 0
    case 3: return segment.toLowerCase() === '%2e' ? 1 : 0
    case 4: return /^(\.%2e|%2e\.)$/i.test(segment) ? 2 : 0
    case 6: return segment.toLowerCase() === '%2e%2e' ? 2 : 0
    default: return 0
  }
}

/**
 * `path` (origin-form, starting with `/`, without query) with its dot segments resolved;
 * null when a `..` climbs above the root. The result is both matched and forwarded, so the two can never disagree.
 */
export function resolveDotSegments (path: string): string | null {
  if (!path.includes('.') && !path.includes('%')) return path
  const segments = path.split('/')
  const resolved: string[] = []
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i] as string
    const last = i === segments.length - 1
    const kind = dotSegmentKind(segment)
    if (kind === 0) {
      resolved.push(segment)
      continue
    }
    if (kind === 2) {
      if (resolved.length === 0) return null
      resolved.pop()
    }
    // `/a/b/..` names the directory `/a/`, so a trailing dot segment leaves its slash behind.
    if (last) resolved.push('')
  }
  return '/' + resolved.join('/')
}

/** The Host header's name, lower-cased and without its port (`[::1]:8080` -> `[::1]`). */
export function hostName (host: string | undefined): string | undefined {
  if (host === undefined) return undefined
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':')
  return (end > 0 ? host.slice(0, end) : host).toLowerCase()
}
