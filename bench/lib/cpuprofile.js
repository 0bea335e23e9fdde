// Reading a V8 .cpuprofile (node --cpu-prof): self and inclusive time per function within a time window, grouped by area.

/**
 * @typedef {object} ProfileNode
 * @property {number} id
 * @property {{ functionName: string, url: string, lineNumber: number, columnNumber: number }} callFrame
 * @property {number[]} [children]
 */

/**
 * @typedef {object} CpuProfile
 * @property {ProfileNode[]} nodes
 * @property {number} startTime  µs, on the monotonic clock (the one process.hrtime reads)
 * @property {number} endTime
 * @property {number[]} samples  node ids
 * @property {number[]} timeDeltas  µs since the previous sample
 */

/** Where a frame's code comes from, by URL; first match wins. */
const AREAS = /** @type {const} */ ([
  [/\/node_modules\/undici\//, 'undici'],
  [/\/node_modules\/(pino|sonic-boom|pino-std-serializers|thread-stream|quick-format-unescaped|fast-redact|@pinojs\/[^/]+|on-exit-leak-free|atomic-sleep|safe-stable-stringify)\//, 'pino logging'],
  [/\/node_modules\/(fastify|@fastify\/[^/]+|find-my-way|avvio|light-my-request|fast-json-stringify|fast-querystring|fast-decode-uri-component|toad-cache|rfdc|abstract-logging|process-warning|secure-json-parse|fastify-plugin|fast-uri|proxy-addr|forwarded|content-type|end-of-stream)\//, 'fastify (and its plugins)'],
  [/\/bench\/[^/]+\.js$/, 'bench baseline server'],
  [/\/dist\/.+\.js$/, 'Breakwater src/ (compiled)'],
  [/^node:(_http_|http$|https$|internal\/http)/, 'node http'],
  [/^node:(net$|stream$|internal\/(net|streams\/|stream_base_commons|dgram))/, 'node net and streams'],
  [/^node:(events$|timers$|internal\/(event_target|abort_controller|timers|process\/task_queues|async_hooks|async_local_storage))/, 'node events, AbortSignal, timers, ticks'],
  [/^node:/, 'node other']
])

/**
 * The area of a frame: parenthesized V8 pseudo-frames by name, native code (no URL) apart, then by URL.
 * @param {ProfileNode['callFrame']} frame
 */
export function areaOf (frame) {
  const { functionName: name, url } = frame
  if (name === '(garbage collector)') return 'GC'
  if (name === '(program)') return 'V8 (program): runtime, compiler, unattributed'
  if (name === '(idle)') return 'idle'
  if (name === '(root)') return 'root'
  if (url === '') return 'native (C++ bindings, V8 builtins)'
  for (const [pattern, area] of AREAS) if (pattern.test(url)) return area
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  return pkg === null ? 'other' : `other: ${pkg[1]}`
}

/** Native code and Node's own modules: charged to whoever called them in the by-caller view. */
function isPlumbing (/** @type {string} */ area) {
  return area.startsWith('native') || area.startsWith('node ')
}

/** `functionName path:line`, with paths cut down to what identifies them. */
export function frameName (/** @type {ProfileNode['callFrame']} */ frame) {
  const url = frame.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/(dist|bench)\//, '$1/')
  return url === '' ? (frame.functionName || '(anonymous)') : `${frame.functionName || '(anonymous)'} ${url}:${frame.lineNumber + 1}`
}

/**
 * @typedef {object} Analysis
 * @property {number} windowUs  sampled time in the window
 * @property {number} idleUs
 * @property {number} samples
 * @property {{ name: string, area: string, us: number }[]} self  per function, largest first
 * @property {{ name: string, area: string, us: number }[]} inclusive  per function (each counted once per sample), largest first
 * @property {{ area: string, us: number, chargedUs: number, byCallerUs: number }[]} areas  self time per area; chargedUs counts
 *   native frames in their JS caller's area; byCallerUs counts native and node-internal frames in the area of the nearest
 *   library or app frame that called them (a socket write under undici is undici's)
 */

/**
 * @param {CpuProfile} profile
 * @param {{ fromUs?: number, toUs?: number }} [window]  keep only samples taken in it (same clock as profile.startTime)
 * @returns {Analysis}
 */
export function analyze (profile, { fromUs = -Infinity, toUs = Infinity } = {}) {
  /** @type {Map<number, ProfileNode>} */
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  /** @type {Map<number, number>} */
  const parent = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

  // Each sample stands for the time until the next one.
  /** @type {Map<number, number>} */
  const selfByNode = new Map()
  let t = profile.startTime
  let samples = 0
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0
    const next = i + 1 < profile.samples.length ? t + (profile.timeDeltas[i + 1] ?? 0) : profile.endTime
    if (t < fromUs || t > toUs) continue
    const id = /** @type {number} */ (profile.samples[i])
    selfByNode.set(id, (selfByNode.get(id) ?? 0) + Math.max(0, next - t))
    samples++
  }

  /** @type {Map<string, { name: string, area: string, us: number }>} */
  const self = new Map()
  /** @type {Map<string, { name: string, area: string, us: number }>} */
  const inclusive = new Map()
  /** @type {Map<string, { area: string, us: number, chargedUs: number, byCallerUs: number }>} */
  const areas = new Map()
  const add = (/** @type {Map<string, { name: string, area: string, us: number }>} */ map, /** @type {ProfileNode} */ node, /** @type {number} */ us) => {
    const name = frameName(node.callFrame)
    const entry = map.get(name) ?? { name, area: areaOf(node.callFrame), us: 0 }
    entry.us += us
    map.set(name, entry)
  }
  const addArea = (/** @type {string} */ area, /** @type {'us' | 'chargedUs' | 'byCallerUs'} */ key, /** @type {number} */ us) => {
    const entry = areas.get(area) ?? { area, us: 0, chargedUs: 0, byCallerUs: 0 }
    entry[key] += us
    areas.set(area, entry)
  }
  let windowUs = 0
  let idleUs = 0
  for (const [id, us] of selfByNode) {
    const node = /** @type {ProfileNode} */ (byId.get(id))
    windowUs += us
    const area = areaOf(node.callFrame)
    if (area === 'idle') idleUs += us
    add(self, node, us)
    addArea(area, 'us', us)
    // A native frame's time is charged to the nearest JS frame above it: writev under sonic-boom is logging.
    let charged = node
    while (areaOf(charged.callFrame).startsWith('native')) {
      const up = parent.get(charged.id)
      if (up === undefined) break
      charged = /** @type {ProfileNode} */ (byId.get(up))
    }
    const chargedArea = areaOf(charged.callFrame)
    addArea(chargedArea === 'root' ? area : chargedArea, 'chargedUs', us)
    // By caller: up to the nearest frame of a library or of the app; none above (the event loop reading a socket
    // before any library runs): the frame's own area.
    let caller = area
    if (isPlumbing(area)) {
      for (let n = byId.get(parent.get(node.id) ?? -1); n !== undefined; n = byId.get(parent.get(n.id) ?? -1)) {
        const up = areaOf(n.callFrame)
        if (!isPlumbing(up) && up !== 'root') {
          caller = up
          break
        }
      }
    }
    addArea(caller, 'byCallerUs', us)
    // Inclusive: every distinct function on the stack, once (recursion would count twice otherwise).
    const seen = new Set()
    for (let n = /** @type {ProfileNode | undefined} */ (node); n !== undefined; n = byId.get(parent.get(n.id) ?? -1)) {
      const name = frameName(n.callFrame)
      if (seen.has(name)) continue
      seen.add(name)
      add(inclusive, n, us)
    }
  }
  const sorted = (/** @type {Iterable<{ us: number }>} */ entries) => [...entries].sort((a, b) => b.us - a.us)
  return {
    windowUs,
    idleUs,
    samples,
    self: /** @type {Analysis['self']} */ (sorted(self.values())),
    inclusive: /** @type {Analysis['inclusive']} */ (sorted(inclusive.values())),
    areas: /** @type {Analysis['areas']} */ (sorted(areas.values()))
  }
}
