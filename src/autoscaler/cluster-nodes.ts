// The Redis Cluster topology as CLUSTER NODES and CLUSTER INFO tell it: nodes, roles, slot ranges, and slots half-moved.

/** A slot range as CLUSTER NODES prints it, both ends included. */
export type SlotRange = readonly [first: number, last: number]

/** A slot a node is moving: to `nodeId` when migrating (`[slot->-id]`), from `nodeId` when importing (`[slot-<-id]`). */
export interface OpenSlot {
  readonly slot: number
  readonly nodeId: string
}

export interface ClusterNode {
  readonly id: string
  /** `host:port` of its clients' port (the bus port and hostname after `@` dropped). */
  readonly address: string
  /** As printed: `myself`, `master`, `slave`, `fail?`, `fail`, `handshake`, `noaddr`, `nofailover`... */
  readonly flags: readonly string[]
  readonly role: 'master' | 'replica'
  /** The master it replicates, or null for a master. */
  readonly masterId: string | null
  readonly slots: readonly SlotRange[]
  /** Only the node itself prints its open slots, so these are empty but on its own `myself` line. */
  readonly migrating: readonly OpenSlot[]
  readonly importing: readonly OpenSlot[]
}

/** Parses the answer of CLUSTER NODES, one node per line; lines it cannot read are an error naming them. */
export function parseClusterNodes (text: string): ClusterNode[] {
  return text.split('\n').map((line) => line.trim()).filter((line) => line !== '').map(parseLine)
}

function parseLine (line: string): ClusterNode {
  const fields = line.split(' ')
  const [id, addressField, flagField, master] = fields
  if (fields.length < 8 || id === undefined || addressField === undefined || flagField === undefined || master === undefined) {
    throw new Error(`expected a CLUSTER NODES line of at least 8 fields, got ${JSON.stringify(line)}`)
  }
  const flags = flagField.split(',')
  const slots: SlotRange[] = []
  const migrating: OpenSlot[] = []
  const importing: OpenSlot[] = []
  for (const field of fields.slice(8)) {
    const open = /^\[(\d+)-([<>])-([0-9a-f]+)\]$/.exec(field)
    if (open !== null) {
      // `->-` is migrating to, `-<-` importing from.
      ;(open[2] === '>' ? migrating : importing).push({ slot: Number(open[1]), nodeId: open[3] as string })
      continue
    }
    const range = /^(\d+)(?:-(\d+))?$/.exec(field)
    if (range === null) throw new Error(`expected a slot, a slot range or an open slot in CLUSTER NODES, got ${JSON.stringify(field)} in ${JSON.stringify(line)}`)
    slots.push([Number(range[1]), Number(range[2] ?? range[1])])
  }
  return {
    id,
    address: addressField.split('@')[0] as string,
    flags,
    role: flags.includes('slave') ? 'replica' : 'master',
    masterId: master === '-' ? null : master,
    slots,
    migrating,
    importing
  }
}

/** Every slot of `ranges`, in order. */
export function slotsOf (ranges: readonly SlotRange[]): number[] {
  return ranges.flatMap(([first, last]) => Array.from({ length: last - first + 1 }, (_, i) => first + i))
}

/** The `field:value` lines of CLUSTER INFO (or INFO), by field. */
export function parseInfo (text: string): ReadonlyMap<string, string> {
  const fields = new Map<string, string>()
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim())
  }
  return fields
}

/** `host` and `port` of a `host:port` address; the host may be an IPv6 address with its own colons. */
export function splitAddress (address: string): [host: string, port: number] {
  const colon = address.lastIndexOf(':')
  const port = Number(address.slice(colon + 1))
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65_535) throw new TypeError(`expected a host:port address, got ${JSON.stringify(address)}`)
  return [address.slice(0, colon).replace(/^\[|\]$/g, ''), port]
}
