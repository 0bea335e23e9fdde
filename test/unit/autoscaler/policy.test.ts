// The scale decision as a table: window averages, each threshold's side, cooldown, min/max masters, spares, and every refusal.
import t from 'tap'
import { decide, LoadWindow, type Decision, type DecisionInput, type PolicyConfig } from '../../../src/autoscaler/index.js'

const INTERVAL_MS = 15_000
const CONFIG: PolicyConfig = {
  windowMs: 120_000,
  cooldownMs: 300_000,
  scaleOut: { cpu: 80, memory: 75 },
  scaleIn: { cpu: 30, memory: 50 },
  minMasters: 3,
  maxMasters: 9
}

/** One master's loads, one per interval from t=0: [cpu, memory] percent, null for unknown. */
type Series = ReadonlyArray<readonly [cpu: number | null, memory: number | null]>

/** The same load for `count` intervals: 9 covers the 2-minute window exactly (t=0 to t=120s). */
const steady = (cpu: number | null, memory: number | null, count = 9): Series => Array.from({ length: count }, () => [cpu, memory] as const)

/** A window fed each master's series; `nowMs` is the time of the last interval. */
function fed (masters: Readonly<Record<string, Series>>, windowMs = CONFIG.windowMs): { window: LoadWindow, nowMs: number } {
  const window = new LoadWindow(windowMs)
  let nowMs = 0
  for (const [node, series] of Object.entries(masters)) {
    series.forEach(([cpu, memory], i) => {
      window.add({ node, atMs: i * INTERVAL_MS, cpu, memory })
      nowMs = Math.max(nowMs, i * INTERVAL_MS)
    })
  }
  return { window, nowMs }
}

interface Row {
  readonly name: string
  readonly masters: Readonly<Record<string, Series>>
  readonly input?: Partial<Omit<DecisionInput, 'config' | 'averages' | 'nowMs'>> & { readonly lastActionAgoMs?: number }
  readonly config?: Partial<PolicyConfig>
  readonly expected: { readonly action: Decision['action'], readonly rule?: string, readonly busiest?: string, readonly reason?: string | RegExp }
}

const three = (cpu: number, memory: number): Record<string, Series> => ({ 'n1:7000': steady(cpu, memory), 'n2:7001': steady(cpu, memory), 'n3:7002': steady(cpu, memory) })
const four = (cpu: number, memory: number): Record<string, Series> => ({ ...three(cpu, memory), 'n4:7003': steady(cpu, memory) })

const ROWS: readonly Row[] = [
  // Thresholds, each side.
  { name: 'all masters in between: hold', masters: three(50, 60), expected: { action: 'hold', rule: 'within_thresholds', busiest: 'n1:7000', reason: 'busiest n1:7000 at CPU 50.0%, memory 60.0%; cluster average CPU 50.0%, memory 60.0%' } },
  { name: 'one master above the CPU threshold: out', masters: { ...three(10, 10), 'n2:7001': steady(85, 10) }, expected: { action: 'scale_out', busiest: 'n2:7001', reason: 'n2:7001 at CPU 85.0% (scale out above 80.0%), memory 10.0% (above 75.0%)' } },
  { name: 'one master above the memory threshold: out', masters: { ...three(10, 10), 'n3:7002': steady(10, 76) }, expected: { action: 'scale_out', busiest: 'n3:7002' } },
  { name: 'CPU exactly at the scale-out threshold is not above it', masters: three(80, 75), expected: { action: 'hold', rule: 'within_thresholds' } },
  { name: 'both on the average below: in', masters: four(10, 20), expected: { action: 'scale_in', busiest: 'n1:7000', reason: 'cluster average CPU 10.0% (scale in below 30.0%), memory 20.0% (below 50.0%)' } },
  { name: 'average CPU exactly at the scale-in threshold is not below it', masters: four(30, 20), expected: { action: 'hold', rule: 'within_thresholds' } },
  { name: 'CPU low but memory not: scale-in needs both', masters: four(5, 55), expected: { action: 'hold', rule: 'within_thresholds' } },
  { name: 'memory low but CPU not: scale-in needs both', masters: four(45, 5), expected: { action: 'hold', rule: 'within_thresholds' } },
  { name: 'scale-in reads the average: one busier master does not stop it', masters: { ...four(5, 20), 'n4:7003': steady(60, 20) }, expected: { action: 'scale_in' } },
  { name: 'a hot master beats a low average: out, never in', masters: { ...four(0, 10), 'n1:7000': steady(90, 10) }, expected: { action: 'scale_out', busiest: 'n1:7000' } },

  // Window averages, never one sample.
  { name: 'one spike in the window is averaged away', masters: { ...three(10, 10), 'n1:7000': [...steady(70, 10, 8), [100, 10]] }, expected: { action: 'hold', rule: 'within_thresholds' } },
  { name: 'a high average with a low last sample still scales out', masters: { ...three(10, 10), 'n1:7000': [...steady(95, 10, 8), [20, 10]] }, expected: { action: 'scale_out', busiest: 'n1:7000' } },
  { name: 'loads older than the window drop out', masters: { 'n1:7000': [...steady(100, 10, 5), ...steady(10, 10, 8)], 'n2:7001': steady(10, 10, 13), 'n3:7002': steady(10, 10, 13), 'n4:7003': steady(10, 10, 13) }, expected: { action: 'scale_in' } },
  { name: 'unknown CPU intervals (a restart) are left out, not counted as 0', masters: { ...three(10, 10), 'n1:7000': [...steady(null, 10, 7), [90, 10], [90, 10]] }, expected: { action: 'scale_out', busiest: 'n1:7000', reason: /CPU 90.0%/ } },
  { name: 'a window shorter than windowMs: hold', masters: { 'n1:7000': steady(99, 99, 8), 'n2:7001': steady(99, 99, 8), 'n3:7002': steady(99, 99, 8) }, expected: { action: 'hold', rule: 'window_short', reason: 'window not full for n1:7000: 105s of 120s watched, 8 CPU and 8 memory sample(s)' } },
  { name: 'one sample: hold', masters: { 'n1:7000': [[99, 99]], 'n2:7001': [[99, 99]], 'n3:7002': [[99, 99]] }, expected: { action: 'hold', rule: 'window_short', reason: /0s of 120s watched/ } },
  { name: 'long watched but one sample in the window: hold', masters: { ...three(99, 99), 'n2:7001': [[99, 99], ...steady(null, null, 7), [99, 99]] }, expected: { action: 'hold', rule: 'window_short', reason: /n2:7001: 120s of 120s watched, 1 CPU and 1 memory sample/ } },
  { name: 'one known CPU figure in the window: hold', masters: { ...three(99, 99), 'n3:7002': [...steady(null, 50, 8), [99, 50]] }, expected: { action: 'hold', rule: 'window_short', reason: /n3:7002: .* 1 CPU and 8 memory/ } },
  { name: 'no memory figure (total_system_memory unknown): hold', masters: { ...three(99, 99), 'n1:7000': steady(99, null) }, expected: { action: 'hold', rule: 'window_short', reason: /0 memory sample/ } },
  { name: 'a master without figures: hold', masters: three(99, 99), input: { mastersCount: 4 }, expected: { action: 'hold', rule: 'unmeasured', reason: '3 master(s) measured, the cluster has 4' } },
  { name: 'figures of a node that is no master: hold', masters: four(99, 99), input: { mastersCount: 3 }, expected: { action: 'hold', rule: 'unmeasured' } },
  { name: 'nothing measured at all: hold', masters: {}, input: { mastersCount: 0 }, expected: { action: 'hold', rule: 'unmeasured' } },

  // Refusals before any figure.
  { name: 'cluster_state not ok: hold', masters: three(99, 99), input: { clusterOk: false }, expected: { action: 'hold', rule: 'cluster_not_ok', reason: 'cluster_state is not ok: no decision until the cluster is healthy' } },
  { name: 'a slot open: hold', masters: four(1, 1), input: { openSlots: 2 }, expected: { action: 'hold', rule: 'slot_open', reason: '2 slot(s) IMPORTING or MIGRATING: no decision until they are repaired' } },
  { name: 'not ok wins over an open slot and a short window', masters: {}, input: { clusterOk: false, openSlots: 1, mastersCount: 0 }, expected: { action: 'hold', rule: 'cluster_not_ok' } },

  // Cooldown.
  { name: 'within the cooldown: hold, with the time left', masters: three(99, 99), input: { lastActionAgoMs: 60_000 }, expected: { action: 'hold', rule: 'cooldown', busiest: 'n1:7000', reason: 'cooldown: 240s left after the last action' } },
  { name: '1 ms before the cooldown ends: hold', masters: four(1, 1), input: { lastActionAgoMs: 299_999 }, expected: { action: 'hold', rule: 'cooldown', reason: 'cooldown: 1s left after the last action' } },
  { name: 'the cooldown over: out', masters: three(99, 99), input: { lastActionAgoMs: 300_000 }, expected: { action: 'scale_out' } },
  { name: 'the cooldown over: in', masters: four(1, 1), input: { lastActionAgoMs: 300_001 }, expected: { action: 'scale_in' } },

  // Min and max masters, spares.
  { name: 'hot at maxMasters: hold, not out', masters: three(99, 10), config: { maxMasters: 3 }, expected: { action: 'hold', rule: 'max_masters', reason: /, but the cluster has 3 masters, maxMasters is 3$/ } },
  { name: 'hot above maxMasters (scaled by hand): hold', masters: four(99, 10), config: { maxMasters: 3 }, expected: { action: 'hold', rule: 'max_masters' } },
  { name: 'a hot master at maxMasters with a low average: hold, never in', masters: { ...four(0, 10), 'n1:7000': steady(90, 10) }, config: { maxMasters: 4 }, expected: { action: 'hold', rule: 'max_masters', busiest: 'n1:7000' } },
  { name: 'hot below maxMasters, one under: out', masters: three(99, 10), config: { maxMasters: 4 }, expected: { action: 'scale_out' } },
  { name: 'hot without a spare: hold', masters: three(99, 10), input: { sparesAvailable: 0 }, expected: { action: 'hold', rule: 'no_spare', reason: /, but no spare node is available$/ } },
  { name: 'idle at minMasters: hold, not in', masters: three(1, 1), expected: { action: 'hold', rule: 'min_masters', reason: /, but the cluster has 3 masters, minMasters is 3$/ } },
  { name: 'idle one above minMasters: in', masters: four(1, 1), expected: { action: 'scale_in' } },
  { name: 'idle at a higher minMasters: hold', masters: four(1, 1), config: { minMasters: 4 }, expected: { action: 'hold', rule: 'min_masters' } },
  { name: 'idle without spares still scales in (spares are only for out)', masters: four(1, 1), input: { sparesAvailable: 0 }, expected: { action: 'scale_in' } },

  // Flapping, busiest by pressure.
  { name: 'in would push CPU over the scale-out threshold on one master fewer: hold', masters: four(65, 10), config: { scaleIn: { cpu: 70, memory: 70 } }, expected: { action: 'hold', rule: 'would_flap', reason: /on 3 masters it would be CPU 86.7%, memory 13.3%: above a scale-out threshold$/ } },
  { name: 'in would push memory over: hold', masters: four(10, 60), config: { scaleIn: { cpu: 70, memory: 70 } }, expected: { action: 'hold', rule: 'would_flap' } },
  { name: 'in that stays under the scale-out thresholds: in', masters: four(55, 55), config: { scaleIn: { cpu: 70, memory: 70 } }, expected: { action: 'scale_in' } },
  { name: 'busiest is the master nearest its thresholds, CPU or memory', masters: { 'n1:7000': steady(70, 10), 'n2:7001': steady(10, 70), 'n3:7002': steady(40, 40) }, expected: { action: 'hold', rule: 'within_thresholds', busiest: 'n2:7001' } }
]

for (const row of ROWS) {
  t.test(row.name, async (t) => {
    const { window, nowMs } = fed(row.masters)
    const { lastActionAgoMs, ...input } = row.input ?? {}
    const averages = window.averages(nowMs)
    const decision = decide({
      nowMs,
      averages,
      mastersCount: Object.keys(row.masters).length,
      clusterOk: true,
      openSlots: 0,
      lastActionAtMs: lastActionAgoMs === undefined ? null : nowMs - lastActionAgoMs,
      sparesAvailable: 1,
      ...input,
      config: { ...CONFIG, ...row.config }
    })
    t.equal(decision.action, row.expected.action, decision.reason)
    if (decision.action === 'hold') t.equal(decision.rule, row.expected.rule)
    else t.equal(row.expected.rule, undefined, 'an action has no hold rule')
    if (row.expected.busiest !== undefined) t.equal(decision.busiest?.node, row.expected.busiest)
    if (row.expected.reason !== undefined) t.match(decision.reason, row.expected.reason)
    // Figures go with every decision past the window checks, and only there.
    const early = ['cluster_not_ok', 'slot_open', 'unmeasured', 'window_short'].includes(row.expected.rule ?? '')
    t.equal(decision.busiest === undefined, early, early ? 'no figures before the window is full' : 'busiest reported')
    t.equal(decision.average === undefined, early)
  })
}

t.test('the figures: busiest master\'s averages, and the cluster average with each master weighing the same', async (t) => {
  const { window, nowMs } = fed({
    'n1:7000': [...steady(20, 40, 8), [40, 40]],
    'n2:7001': steady(10, 20),
    'n3:7002': steady(0, 0)
  })
  const decision = decide({ nowMs, averages: window.averages(nowMs), mastersCount: 3, clusterOk: true, openSlots: 0, lastActionAtMs: null, sparesAvailable: 0, config: { ...CONFIG, scaleIn: { cpu: 5, memory: 50 } } })
  // The window holds t in (0, 120s]: n1's seven 20s and its last 40.
  t.same(decision, {
    action: 'hold',
    rule: 'within_thresholds',
    reason: 'busiest n1:7000 at CPU 22.5%, memory 40.0%; cluster average CPU 10.8%, memory 20.0%',
    busiest: { node: 'n1:7000', cpu: 22.5, memory: 40 },
    average: { cpu: (22.5 + 10 + 0) / 3, memory: 20 }
  })
})

t.test('LoadWindow: averages per node over the window, sorted by node, old loads dropped for good', async (t) => {
  const window = new LoadWindow(60_000)
  t.equal(window.windowMs, 60_000)
  t.same(window.averages(0), [], 'empty')
  window.add({ node: 'b:2', atMs: 0, cpu: 90, memory: 10 })
  window.add({ node: 'a:1', atMs: 0, cpu: null, memory: 30 })
  window.add({ node: 'b:2', atMs: 30_000, cpu: 50, memory: 20 })
  window.add({ node: 'a:1', atMs: 30_000, cpu: 40, memory: null })
  t.same(window.averages(30_000), [
    { node: 'a:1', cpu: 40, memory: 30, cpuSamples: 1, memorySamples: 1, coveredMs: 30_000 },
    { node: 'b:2', cpu: 70, memory: 15, cpuSamples: 2, memorySamples: 2, coveredMs: 30_000 }
  ])
  t.same(window.averages(60_000).map((a) => [a.node, a.cpu, a.cpuSamples, a.coveredMs]), [['a:1', 40, 1, 60_000], ['b:2', 50, 1, 60_000]], 'the loads at t=0 fall out at t=60s')
  t.same(window.averages(90_000).map((a) => [a.node, a.cpu, a.memory, a.cpuSamples, a.memorySamples]), [['a:1', null, null, 0, 0], ['b:2', null, null, 0, 0]], 'all gone: averages unknown, coverage kept')
  window.add({ node: 'b:2', atMs: 20_000, cpu: 10, memory: 10 })
  t.equal(window.averages(30_000).find((a) => a.node === 'b:2')?.cpuSamples, 1, 'a dropped load does not come back when the clock is asked earlier')
})

t.test('LoadWindow: retain forgets nodes that are no master, clear forgets all; coverage starts again', async (t) => {
  const { window, nowMs } = fed(four(10, 10))
  t.same(window.averages(nowMs).map((a) => a.coveredMs), [120_000, 120_000, 120_000, 120_000])
  window.retain(['n1:7000', 'n2:7001', 'n3:7002', 'n9:7009'])
  t.same(window.averages(nowMs).map((a) => a.node), ['n1:7000', 'n2:7001', 'n3:7002'], 'drained n4 gone; n9, never seen, not invented')
  window.clear()
  t.same(window.averages(nowMs), [])
  window.add({ node: 'n1:7000', atMs: nowMs, cpu: 10, memory: 10 })
  t.equal(window.averages(nowMs + INTERVAL_MS)[0]?.coveredMs, INTERVAL_MS, 'a node seen again starts its coverage over')
})

t.test('LoadWindow refuses a window of 0 or less', async (t) => {
  t.throws(() => new LoadWindow(0), new RangeError('expected windowMs above 0, got 0'))
  t.throws(() => new LoadWindow(Number.NaN), RangeError)
})
