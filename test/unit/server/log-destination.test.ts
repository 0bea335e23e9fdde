import t from 'tap'
import { batchedLogDestination, LOG_BATCH_BYTES, type BatchSink } from '../../../src/server/log-destination.js'
import { waitUntil } from '../../helpers/wait.js'

/** A sink that records what it is handed (copied: the destination may reuse its buffer), in place of sonic-boom. */
function recording (): BatchSink & { readonly batches: string[], flushes: number } {
  const batches: string[] = []
  return {
    batches,
    flushes: 0,
    write (batch: Buffer) { batches.push(batch.toString()) },
    flushSync () { this.flushes++ }
  }
}

t.test('gathered lines are handed over as one batch, in order, after the batch delay', async (t) => {
  const sink = recording()
  const destination = batchedLogDestination(sink)
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
  const destination = batchedLogDestination(sink)
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
  const destination = batchedLogDestination(sink)
  const huge = `${'é'.repeat(LOG_BATCH_BYTES * 4)}\n`
  destination.write('before\n')
  destination.write(huge)
  t.same(sink.batches, ['before\n', huge])
})

t.test('flushSync hands over what is gathered, then flushes the sink', async (t) => {
  const sink = recording()
  const destination = batchedLogDestination(sink)
  destination.write('before exit\n')
  destination.flushSync()
  t.same(sink.batches, ['before exit\n'])
  t.equal(sink.flushes, 1)
  destination.flushSync()
  t.same(sink.batches, ['before exit\n'], 'nothing twice')
})
