import { closeSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { batchedLogDestination } from '../../../src/server/log-destination.js'
import { waitUntil } from '../../helpers/wait.js'

function openLog (t: Test): { fd: number, read: () => string } {
  const file = join(t.testdir(), 'log')
  const fd = openSync(file, 'w')
  t.teardown(() => { closeSync(fd) })
  return { fd, read: () => readFileSync(file, 'utf8') }
}

t.test('the lines of one event-loop turn are written after it, in order, and later turns follow', async (t) => {
  const { fd, read } = openLog(t)
  const destination = batchedLogDestination(fd)
  destination.write('one\n')
  destination.write('two\n')
  t.equal(read(), '', 'nothing is written during the turn')
  await waitUntil(() => read() === 'one\ntwo\n', 'the first turn\'s lines')
  destination.write('three\n')
  await waitUntil(() => read() === 'one\ntwo\nthree\n', 'the next turn\'s line')
  t.equal(read(), 'one\ntwo\nthree\n')
})

t.test('flushSync writes the lines gathered so far at once', async (t) => {
  const { fd, read } = openLog(t)
  const destination = batchedLogDestination(fd)
  destination.write('before exit\n')
  destination.flushSync()
  t.equal(read(), 'before exit\n')
  destination.flushSync()
  t.equal(read(), 'before exit\n', 'nothing twice')
})
