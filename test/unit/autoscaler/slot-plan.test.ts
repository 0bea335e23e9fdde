// The rebalance and drain plans as tables: who gives which slots to whom, and the evenness every plan must reach.
import t from 'tap'
import { CLUSTER_SLOTS, drainPlan, rebalancePlan, type SlotLayout, type SlotMove } from '../../../src/autoscaler/slot-plan.js'

/** Slots `first` to `last`, both included. */
const range = (first: number, last: number): number[] => Array.from({ length: last - first + 1 }, (_, i) => first + i)

/** The moves as `source>target:first-last` runs, so a table row stays short. */
const runs = (moves: readonly SlotMove[]): string[] => {
  const out: string[] = []
  let start: SlotMove | undefined
  let prev: SlotMove | undefined
  for (const move of [...moves, undefined]) {
    if (move !== undefined && prev !== undefined && start !== undefined && move.source === prev.source && move.target === prev.target && move.slot === prev.slot + 1) {
      prev = move
      continue
    }
    if (start !== undefined && prev !== undefined) out.push(`${start.source}>${start.target}:${start.slot}${prev.slot === start.slot ? '' : `-${prev.slot}`}`)
    start = move
    prev = move
  }
  return out
}

/** The slot counts once `moves` are applied to `layout`; throws if a move takes a slot its source does not hold. */
const after = (layout: SlotLayout, moves: readonly SlotMove[]): Record<string, number> => {
  const held = new Map(Object.entries(layout).map(([name, slots]) => [name, new Set(slots)]))
  for (const { slot, source, target } of moves) {
    if (held.get(source)?.delete(slot) !== true) throw new Error(`${source} does not hold slot ${slot}`)
    if (!held.has(target)) held.set(target, new Set())
    held.get(target)?.add(slot)
  }
  return Object.fromEntries([...held].map(([name, slots]) => [name, slots.size]))
}

/** The layout `redis-cli --cluster create` makes for 3 masters. */
const THREE: SlotLayout = { a: range(0, 5460), b: range(5461, 10922), c: range(10923, 16383) }

t.test('rebalancePlan', async (t) => {
  const rows: Array<{ name: string, layout: SlotLayout, masters: string[], moves: string[], counts: Record<string, number> }> = [
    {
      name: 'already even: nothing moves',
      layout: THREE,
      masters: ['a', 'b', 'c'],
      moves: [],
      counts: { a: 5461, b: 5462, c: 5461 }
    },
    {
      name: 'a fourth empty master: each gives its lowest slots, the extra slots stay with the most loaded',
      layout: THREE,
      masters: ['a', 'b', 'c', 'd'],
      moves: ['b>d:5461-6826', 'a>d:0-1364', 'c>d:10923-12287'],
      counts: { a: 4096, b: 4096, c: 4096, d: 4096 }
    },
    {
      name: 'a master left out gives everything away, to the least loaded first',
      layout: { a: range(0, 9), b: range(10, 13), c: range(14, 15) },
      masters: ['b', 'c'],
      moves: ['a>c:0-5', 'a>b:6-9'],
      counts: { a: 0, b: 8, c: 8 }
    },
    {
      name: 'an uneven split: the remainder goes to the most loaded, ties by name',
      layout: { x: range(0, 6), y: [], z: [] },
      masters: ['x', 'y', 'z'],
      moves: ['x>y:0-1', 'x>z:2-3'],
      counts: { x: 3, y: 2, z: 2 }
    },
    {
      name: 'slots given in ascending order whatever the input order',
      layout: { a: [9, 3, 7, 1], b: [] },
      masters: ['a', 'b'],
      moves: ['a>b:1', 'a>b:3'],
      counts: { a: 2, b: 2 }
    },
    {
      name: 'ties are broken by name whatever the order masters are named in',
      layout: { c: [], b: [], a: range(0, 5) },
      masters: ['c', 'b', 'a'],
      moves: ['a>b:0-1', 'a>c:2-3'],
      counts: { a: 2, b: 2, c: 2 }
    },
    {
      name: 'a master named only in masters starts empty',
      layout: { a: range(0, 3) },
      masters: ['a', 'b'],
      moves: ['a>b:0-1'],
      counts: { a: 2, b: 2 }
    }
  ]
  for (const row of rows) {
    const moves = rebalancePlan(row.layout, row.masters)
    t.same(runs(moves), row.moves, row.name)
    t.same(after(row.layout, moves), row.counts, `${row.name}: counts`)
  }

  t.throws(() => rebalancePlan(THREE, []), { name: 'TypeError', message: 'expected masters to name at least one master, got []' })
  t.throws(() => rebalancePlan(THREE, ['a', 'a']), { name: 'TypeError', message: 'expected masters to name each master once, got a, a' })
})

t.test('rebalancePlan evens 16384 slots within 1 for every cluster size, moving each slot at most once', async (t) => {
  for (let from = 3; from <= 9; from++) {
    for (const to of [from - 1, from + 1]) {
      if (to < 1) continue
      const names = Array.from({ length: Math.max(from, to) }, (_, i) => `m${i}`)
      const per = Math.ceil(CLUSTER_SLOTS / from)
      const layout = Object.fromEntries(names.slice(0, from).map((name, i) => [name, range(i * per, Math.min((i + 1) * per, CLUSTER_SLOTS) - 1)]))
      const masters = names.slice(0, to)
      const moves = rebalancePlan(layout, masters)
      const counts = after(layout, moves)
      const even = CLUSTER_SLOTS / to
      t.ok(masters.every((name) => Math.abs((counts[name] ?? 0) - even) < 1), `${from} -> ${to}: every master within 1 of ${even.toFixed(1)}`)
      t.equal(new Set(moves.map((move) => move.slot)).size, moves.length, `${from} -> ${to}: no slot moves twice`)
      t.ok(moves.every((move) => move.source !== move.target), `${from} -> ${to}: no move to itself`)
    }
  }
})

t.test('drainPlan', async (t) => {
  const rows: Array<{ name: string, layout: SlotLayout, drained: string, moves: string[], counts: Record<string, number> }> = [
    {
      name: 'a fourth master back to three: one contiguous run each',
      layout: { a: range(1365, 5460), b: range(6827, 10922), c: range(12288, 16383), d: [...range(0, 1364), ...range(5461, 6826), ...range(10923, 12287)] },
      drained: 'd',
      moves: ['d>a:0-1364', 'd>a:5461', 'd>b:5462-6826', 'd>c:10923-12287'],
      counts: { a: 5462, b: 5461, c: 5461, d: 0 }
    },
    {
      name: 'the least loaded is filled up to the others first, then ties go to the first name',
      layout: { a: range(0, 9), b: range(10, 11), c: range(12, 15), d: range(16, 19) },
      drained: 'a',
      moves: ['a>b:0-4', 'a>c:5-7', 'a>d:8-9'],
      counts: { a: 0, b: 7, c: 7, d: 6 }
    },
    {
      name: 'others already above the drained share get nothing',
      layout: { a: [5], b: range(0, 4), c: range(6, 7) },
      drained: 'a',
      moves: ['a>c:5'],
      counts: { a: 0, b: 5, c: 3 }
    },
    {
      name: 'a master with no slot: nothing to move',
      layout: { a: [], b: range(0, 4) },
      drained: 'a',
      moves: [],
      counts: { a: 0, b: 5 }
    }
  ]
  for (const row of rows) {
    const moves = drainPlan(row.layout, row.drained)
    t.same(runs(moves), row.moves, row.name)
    t.same(after(row.layout, moves), row.counts, `${row.name}: counts`)
  }

  t.throws(() => drainPlan(THREE, 'z'), { name: 'TypeError', message: 'expected the layout to hold the drained master z, got a, b, c' })
  t.throws(() => drainPlan({ a: [1] }, 'a'), { name: 'TypeError', message: 'expected another master to take the slots of a, got none' })
})
