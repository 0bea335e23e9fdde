import { execFileSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { batchedLogDestination, LOG_BATCH_BYTES, logDestination, type BatchSink } from '../../../src/server/log-destination.js'
import { waitUntil } from '../../helpers/wait.js'

/** A sink that records what it is handed (copied: the destination may reuse its buffer), in place of sonic-boom. */
function recording (): BatchSink & { readonly batches: string[], flushes: number } {
  const batches: string[] = []
  return {
    batches,
    flushes: 0,
    write (batch: Buffer) { batches.push(batch.toString()) },
    flushSync () { this.flushes++ },
    on () {}
  }
}

t.test('gathered lines are handed over as one batch, in order, after the batch delay', async (t) => {
  const sink = recording()
  const destination = batchedLogDestination(sink, () => {})
  destination.write('one\n')
  destination.write('twø\n')
  t.same(sink.batches, [], 'nothing is handed over at once')
  await waitUntil(() => sink.batches.length > 0, 'the batch delay to pass')
  t.same(sink.batches, ['one\ntwø\n'], 'UTF-8 encoded, in order')
  destination.write('three\n')
  await waitUntil(() => sink.batches.length > 1, 'the next batch')
  t.same(sink.batches, ['one\ntwø\n', 'three\n'])
})

t.test(`lines reaching ${LOG_BATCH_BYTES} bytes are handed over at once, and buffers are renewed as they fill`, async (t) => {
  const sink = recording()
  const destination = batchedLogDestination(sink, () => {})
  const quarter = `${'x'.repeat(LOG_BATCH_BYTES / 4 - 1)}\n`
  const lines: string[] = []
  for (let i = 0; i < 40; i++) {
    const line = `${i} ${quarter}`
    lines.push(line)
    destination.write(line)
  }
  t.ok(sink.batches.length >= 9, 'handed over by size, without waiting for the delay')
  destination.flushSync()
  t.equal(sink.batches.join(''), lines.join(''), 'every line once, in order, across buffers')
})

t.test('a line larger than a buffer goes on its own, after what was gathered before it', async (t) => {
  const sink = recording()
  const destination = batchedLogDestination(sink, () => {})
  const huge = `${'é'.repeat(LOG_BATCH_BYTES * 4)}\n`
  destination.write('before\n')
  destination.write(huge)
  t.same(sink.batches, ['before\n', huge])
})

t.test('flushSync hands over what is gathered, then flushes the sink', async (t) => {
  const sink = recording()
  const destination = batchedLogDestination(sink, () => {})
  destination.write('before exit\n')
  destination.flushSync()
  t.same(sink.batches, ['before exit\n'])
  t.equal(sink.flushes, 1)
  destination.flushSync()
  t.same(sink.batches, ['before exit\n'], 'nothing twice')
})

t.test('behind a destination that does not keep up, at most maxPendingBytes wait unwritten; the rest is dropped whole lines at a time, counted and reported once it has caught up', async (t) => {
  // A real FIFO whose reader reads nothing until every line is written: sonic-boom meets EAGAIN, as behind a stalled
  // log shipper, and without a bound would hold all 8 MiB.
  const dir = mkdtempSync(join(tmpdir(), 'bw-log-'))
  const fifo = join(dir, 'log.fifo')
  execFileSync('mkfifo', [fifo])
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
  const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
  t.teardown(() => {
    closeSync(reader)
    closeSync(writer)
    rmSync(dir, { recursive: true, force: true })
  })
  const maxPendingBytes = 256 * 1024
  const reports: Array<{ lines: number, bytes: number }> = []
  const destination = logDestination(writer, (lines, bytes) => { reports.push({ lines, bytes }) }, maxPendingBytes)

  const count = 80_000
  const pad = 'x'.repeat(90)
  let written = 0
  for (let i = 0; i < count; i++) {
    const line = `line ${i} ${pad}\n`
    destination.write(line)
    written += line.length
  }

  let received = ''
  const chunk = Buffer.alloc(64 * 1024)
  const readAll = (): void => {
    for (;;) {
      let n: number
      try {
        n = readSync(reader, chunk)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return
        throw err
      }
      if (n === 0) return
      received += chunk.toString('latin1', 0, n)
    }
  }
  const dropped = (): number => reports.reduce((sum, report) => sum + report.lines, 0)
  await waitUntil(() => {
    readAll()
    return reports.length > 0 && received.split('\n').length - 1 + dropped() === count
  }, 'every line read or reported dropped', 20_000)

  const lines = received.split('\n').slice(0, -1)
  t.ok(lines.every((line) => /^line \d+ x{90}$/.test(line)), 'only whole lines were dropped')
  const numbers = lines.map((line) => Number(line.split(' ')[1]))
  t.ok(numbers.every((n, i) => i === 0 || n > (numbers[i - 1] as number)), 'in order')
  const droppedBytes = reports.reduce((sum, report) => sum + report.bytes, 0)
  t.equal(received.length + droppedBytes, written, 'the report counts the bytes that did not arrive')
  // What arrived is what the sink held: the bound, the pipe's buffer (64 KiB on Linux) and one batch that fitted.
  t.ok(received.length <= maxPendingBytes + 64 * 1024 + 2 * LOG_BATCH_BYTES, `at most about maxPendingBytes were held (${received.length} bytes arrived of ${written})`)
})

t.test('a destination that keeps up gets every line, and nothing is reported', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-log-'))
  const file = join(dir, 'out.log')
  const fd = openSync(file, 'w')
  t.teardown(() => {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  })
  const reports: number[] = []
  const destination = logDestination(fd, (lines) => { reports.push(lines) })
  destination.write('one\n')
  destination.write('two\n')
  await waitUntil(() => readFileSync(file, 'utf8') === 'one\ntwo\n', 'the lines in the file')
  t.same(reports, [])
})
