// Which hash slots move where: the rebalance plan (even the slot count over a set of masters) and the drain plan (empty one master), both pure.

/** Redis Cluster's hash slots, 0 to 16383. */
export const CLUSTER_SLOTS = 16_384

/** One slot to move from the master `source` to the master `target` (masters named as the caller names them). */
export interface SlotMove {
  readonly slot: number
  readonly source: string
  readonly target: string
}

/** The slots each master holds now, by master. */
export type SlotLayout = Readonly<Record<string, readonly number[]>>

/**
 * The moves that leave every master of `masters` holding the same number of slots, within 1, and every master of
 * `layout` not in `masters` holding none, as `redis-cli --cluster rebalance` does: the most loaded give to the least
 * loaded. The extra slots of an uneven split stay with the masters that hold the most now, so nothing moves twice;
 * each source gives away its lowest slots, so a target receives contiguous ranges.
 * @param masters the masters to end with; one missing from `layout` starts with no slot
 */
export function rebalancePlan (layout: SlotLayout, masters: readonly string[]): SlotMove[] {
  if (masters.length === 0) throw new TypeError('expected masters to name at least one master, got []')
  const keep = new Set(masters)
  if (keep.size !== masters.length) throw new TypeError(`expected masters to name each master once, got ${masters.join(', ')}`)
  const names = [...new Set([...Object.keys(layout), ...masters])]
  const count = (name: string): number => layout[name]?.length ?? 0
  const total = names.reduce((sum, name) => sum + count(name), 0)
  const base = Math.floor(total / masters.length)
  const extra = total % masters.length
  const wanted = new Map<string, number>(names.map((name) => [name, 0]))
  byLoadThenName([...masters], count).forEach((name, i) => wanted.set(name, base + (i < extra ? 1 : 0)))

  const sources = byLoadThenName(names.filter((name) => count(name) > (wanted.get(name) as number)), (name) => count(name) - (wanted.get(name) as number))
  const targets = byLoadThenName(names.filter((name) => count(name) < (wanted.get(name) as number)), (name) => (wanted.get(name) as number) - count(name))
  const given = sources.flatMap((source) => [...(layout[source] as readonly number[])].sort((a, b) => a - b)
    .slice(0, count(source) - (wanted.get(source) as number)).map((slot) => ({ slot, source })))
  return assign(given, targets.map((target) => [target, (wanted.get(target) as number) - count(target)]))
}

/**
 * The moves that empty `drained`, spreading its slots over the other masters so that their counts end as even as
 * they can without moving any other slot: each slot goes to whoever holds the fewest (filling the lowest first), and
 * each target receives one contiguous run of `drained`'s slots.
 */
export function drainPlan (layout: SlotLayout, drained: string): SlotMove[] {
  const slots = layout[drained]
  if (slots === undefined) throw new TypeError(`expected the layout to hold the drained master ${drained}, got ${Object.keys(layout).join(', ')}`)
  const others = Object.keys(layout).filter((name) => name !== drained).sort()
  if (others.length === 0) throw new TypeError(`expected another master to take the slots of ${drained}, got none`)
  const counts = new Map(others.map((name) => [name, (layout[name] as readonly number[]).length]))
  const quota = new Map(others.map((name) => [name, 0]))
  for (let i = 0; i < slots.length; i++) {
    // The fewest slots, ties to the first name: a few thousand rounds over at most a few dozen masters.
    const least = others.reduce((best, name) => (counts.get(name) as number) < (counts.get(best) as number) ? name : best)
    counts.set(least, (counts.get(least) as number) + 1)
    quota.set(least, (quota.get(least) as number) + 1)
  }
  const given = [...slots].sort((a, b) => a - b).map((slot) => ({ slot, source: drained }))
  return assign(given, others.filter((name) => (quota.get(name) as number) > 0).map((name) => [name, quota.get(name) as number]))
}

/** Hands `given` out in order: the first target takes its share, then the next. The shares add up to `given.length`. */
function assign (given: ReadonlyArray<{ slot: number, source: string }>, shares: ReadonlyArray<readonly [string, number]>): SlotMove[] {
  const moves: SlotMove[] = []
  let next = 0
  for (const [target, share] of shares) {
    for (const { slot, source } of given.slice(next, next + share)) moves.push({ slot, source, target })
    next += share
  }
  return moves
}

/** `names` by `load` descending, ties by name, so that a plan never depends on the order of its input. */
function byLoadThenName (names: string[], load: (name: string) => number): string[] {
  // Names are unique, so a tie on load is never a tie on name.
  return names.sort((a, b) => load(b) - load(a) || (a < b ? -1 : 1))
}
