// Human durations and sizes: what parses, to how many milliseconds or bytes, and what is refused.
import t from 'tap'
import { parseDurationMs, parseSizeBytes } from '../../../src/config/index.js'

/** The error `fn` throws (t.throws matches messages by substring; these are compared whole). */
const thrown = (fn: () => unknown): unknown => {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

t.test('durations: ms, s, m, h to milliseconds', async (t) => {
  const cases: Array<[string, number]> = [['250ms', 250], ['5s', 5000], ['1m', 60_000], ['1h', 3_600_000], ['90s', 90_000]]
  for (const [text, ms] of cases) t.equal(parseDurationMs(text), ms, text)
})

t.test('sizes: b, kb, mb, gb to bytes, binary multiples', async (t) => {
  const cases: Array<[string, number]> = [['100b', 100], ['512kb', 512 * 1024], ['1mb', 1024 ** 2], ['1gb', 1024 ** 3]]
  for (const [text, bytes] of cases) t.equal(parseSizeBytes(text), bytes, text)
})

t.test('a duration without a unit, zero, a fraction or another unit is refused', async (t) => {
  for (const text of ['5', '0s', '05s', '1.5s', '5S', '5 s', '1d', '-1s', '']) {
    const error = thrown(() => parseDurationMs(text))
    t.type(error, TypeError, text)
    t.equal((error as Error).message, `expected a duration like 5s, got ${JSON.stringify(text)}`)
  }
})

t.test('a size without a unit, zero, a fraction or another unit is refused', async (t) => {
  for (const text of ['1024', '0kb', '1.5mb', '1MB', '1tb', '1k', '']) {
    const error = thrown(() => parseSizeBytes(text))
    t.type(error, TypeError, text)
    t.equal((error as Error).message, `expected a size like 1mb, got ${JSON.stringify(text)}`)
  }
})
