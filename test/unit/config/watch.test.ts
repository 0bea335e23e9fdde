// Config hot reload: which real file-system changes call onChange, how often, and that the watcher never crashes the process.
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import { DEFAULT_WATCH_DEBOUNCE_MS, watchConfigFile, type WatchConfigOptions } from '../../../src/config/index.js'
import { waitUntil } from '../../helpers/wait.js'

const DEBOUNCE_MS = 50
// Node may run a timer up to a millisecond early against performance.now(), as libuv's clock has whole milliseconds.
const TIMER_SLACK_MS = 2

/** A temp directory removed when the test ends. */
const tempDir = async (t: Test): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'bw-watch-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

interface Watched {
  /** How many times onChange ran. */
  readonly calls: number
  /** performance.now() at each call. */
  readonly at: number[]
  close: () => void
}

/** A watcher on `file` that counts its calls, closed when the test ends; `options` as watchConfigFile's. */
const watched = (t: Test, file: string, options: WatchConfigOptions = { debounceMs: DEBOUNCE_MS }): Watched => {
  const at: number[] = []
  const watcher = watchConfigFile(file, () => { at.push(performance.now()) }, options)
  t.teardown(watcher.close)
  return { get calls () { return at.length }, at, close: watcher.close }
}

t.test('a burst of writes calls onChange once, debounceMs after the last write', async (t) => {
  const file = join(await tempDir(t), 'gateway.yaml')
  await writeFile(file, 'v: 0\n')
  const w = watched(t, file)
  let lastWriteStart = 0
  for (let i = 1; i <= 5; i++) {
    lastWriteStart = performance.now()
    await writeFile(file, `v: ${i}\n`)
  }
  await waitUntil(() => w.calls >= 1, 'onChange after the burst')
  t.ok(w.at[0]! - lastWriteStart >= DEBOUNCE_MS - TIMER_SLACK_MS, 'not before debounceMs after the last write')
  // A bounded check that no second call follows: three debounce periods is ample for a straggling event's timer.
  await t.rejects(waitUntil(() => w.calls > 1, 'a second call', 3 * DEBOUNCE_MS))
  t.equal(w.calls, 1)
})

t.test('with no options, onChange runs DEFAULT_WATCH_DEBOUNCE_MS (500) after the change', async (t) => {
  t.equal(DEFAULT_WATCH_DEBOUNCE_MS, 500)
  const file = join(await tempDir(t), 'gateway.yaml')
  await writeFile(file, 'v: 0\n')
  const w = watched(t, file, {})
  const writeStart = performance.now()
  await writeFile(file, 'v: 1\n')
  await waitUntil(() => w.calls === 1, 'onChange with the default debounce')
  t.ok(w.at[0]! - writeStart >= DEFAULT_WATCH_DEBOUNCE_MS - TIMER_SLACK_MS, 'waited the default debounce')
})

t.test('a Kubernetes ConfigMap update (the ..data symlink swap) calls onChange', async (t) => {
  const dir = await tempDir(t)
  // The layout the kubelet makes: gateway.yaml -> ..data/gateway.yaml, ..data -> ..<timestamp>.
  const oldVersion = '..2026_12_07_01_00_00.123'
  await mkdir(join(dir, oldVersion))
  await writeFile(join(dir, oldVersion, 'gateway.yaml'), 'v: 1\n')
  await symlink(oldVersion, join(dir, '..data'))
  await symlink(join('..data', 'gateway.yaml'), join(dir, 'gateway.yaml'))
  const w = watched(t, join(dir, 'gateway.yaml'))

  // The update: a new timestamped dir, a ..data_tmp symlink to it renamed over ..data, the old dir deleted.
  // gateway.yaml itself is never touched, so only the ..data names can tell the watcher.
  const newVersion = '..2026_12_07_01_05_00.456'
  await mkdir(join(dir, newVersion))
  await writeFile(join(dir, newVersion, 'gateway.yaml'), 'v: 2\n')
  await symlink(newVersion, join(dir, '..data_tmp'))
  await rename(join(dir, '..data_tmp'), join(dir, '..data'))
  await rm(join(dir, oldVersion), { recursive: true })

  await waitUntil(() => w.calls >= 1, 'onChange after the ..data swap')
  t.equal(w.calls, 1, 'the swap is one burst')
})

t.test('changes to other files in the directory do not call onChange', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'gateway.yaml')
  const other = join(dir, 'other.yaml')
  await writeFile(file, 'v: 0\n')
  await writeFile(other, 'v: 0\n')
  const w = watched(t, file)
  // The signal that the other writes were seen and would have fired by now: a watcher on other.yaml gets the same
  // events in the same dispatch, and with a longer debounce its call comes after any call w would have made.
  const signal = watched(t, other, { debounceMs: 3 * DEBOUNCE_MS })

  await writeFile(other, 'v: 1\n')
  await writeFile(join(dir, '.gateway.yaml.swp'), 'editor swap file')
  await writeFile(join(dir, 'gateway.yaml~'), 'editor backup')
  await waitUntil(() => signal.calls >= 1, 'the other.yaml watcher')
  t.equal(w.calls, 0, 'no call for other files')

  // And the watcher is alive: its own file still counts.
  await writeFile(file, 'v: 1\n')
  await waitUntil(() => w.calls >= 1, 'onChange for the watched file')
  t.equal(w.calls, 1)
})

t.test('close() drops a pending call and stops later ones; calling it twice is fine', async (t) => {
  const file = join(await tempDir(t), 'gateway.yaml')
  await writeFile(file, 'v: 0\n')
  const w = watched(t, file)
  // Two more watchers on the same file get each event in the same dispatch as w: `seen` (no debounce) says w's timer
  // is pending, and `later` (three times w's debounce) says w's call would have come by now.
  const seen = watched(t, file, { debounceMs: 0 })
  const later = watched(t, file, { debounceMs: 3 * DEBOUNCE_MS })

  await writeFile(file, 'v: 1\n')
  await waitUntil(() => seen.calls >= 1, 'the event to reach the watchers')
  w.close()
  await waitUntil(() => later.calls >= 1, 'the slower watcher')
  t.equal(w.calls, 0, 'the pending call was dropped')

  await writeFile(file, 'v: 2\n')
  await waitUntil(() => later.calls >= 2, 'the slower watcher, second write')
  t.equal(w.calls, 0, 'no call after close')
  t.doesNotThrow(() => { w.close() }, 'close() again')
})

t.test('removing the directory neither throws nor crashes; close() afterwards is fine', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'gateway.yaml')
  await writeFile(file, 'v: 0\n')
  const w = watched(t, file)
  await rm(dir, { recursive: true })
  // The file went away with its directory: that is a change (the caller's reload fails and it keeps the running config).
  await waitUntil(() => w.calls >= 1, 'onChange for the removed file')
  t.doesNotThrow(() => { w.close() })
  t.doesNotThrow(() => { w.close() })
})

t.test('bad options and a missing directory throw at the start', async (t) => {
  for (const debounceMs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => watchConfigFile('gateway.yaml', () => {}, { debounceMs }),
      new TypeError(`expected options.debounceMs to be a number of milliseconds >= 0, got ${String(debounceMs)}`), String(debounceMs))
  }
  const missing = join(await tempDir(t), 'no-such-dir', 'gateway.yaml')
  t.throws(() => watchConfigFile(missing, () => {}), { code: 'ENOENT' })
})
