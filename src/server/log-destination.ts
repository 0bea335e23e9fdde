// The log destination: lines gathered into batches for pino's sonic-boom, like nginx's `access_log ... buffer= flush=`, with a bound on what waits unwritten.
import { pino } from 'pino'

/** What pino writes its lines to, and what a shutdown flushes. */
export interface LogDestination {
  write (line: string): unknown
  /** Writes every line handed over so far, synchronously: for the last lines before the process exits. */
  flushSync (): void
}

/** Where the batches go: sonic-boom in buffer mode, `pino.destination({ contentMode: 'buffer', maxLength })`. */
export interface BatchSink {
  write (batch: Buffer): unknown
  flushSync (): void
  /** sonic-boom emits `drop` with a batch it refused because it already held `maxLength` bytes unwritten... */
  on (event: 'drop', listener: (batch: Buffer) => void): unknown
  /** ... and `drain` when it has written all it held. */
  on (event: 'drain', listener: () => void): unknown
}

/** Told how many lines and bytes were dropped, once the sink has caught up again. */
export type DropReport = (lines: number, bytes: number) => void

/** Gathered lines are handed over once they reach this many bytes... */
export const LOG_BATCH_BYTES = 16 * 1024
/** ... or this long after the first of them was written, whichever comes first. */
export const LOG_BATCH_DELAY_MS = 100
/** The lines are encoded into buffers of this size; each holds a few batches. */
const BUFFER_BYTES = 4 * LOG_BATCH_BYTES
/**
 * At most this many bytes wait unwritten; batches past it are dropped and counted. sonic-boom keeps every batch it is
 * handed until the fd takes it, and has no bound by default: behind a destination slower than the gateway's logging
 * (a pipe to a busy log shipper, a terminal) its queue grows by the difference for as long as the load lasts (issue 14:
 * 66 MiB of Buffers after 60 s of 502s behind a pipe read at 2 MB/s). 16 MiB is a few seconds of a saturated gateway's log.
 */
export const LOG_MAX_PENDING_BYTES = 16 * 1024 * 1024

/**
 * pino's sonic-boom on `fd` (stdout: 1) in buffer mode, asynchronous, holding at most `maxPendingBytes` unwritten, fed
 * in batches. `onDropped` hears how many lines were dropped once the destination has caught up.
 */
export function logDestination (fd: number, onDropped: DropReport, maxPendingBytes = LOG_MAX_PENDING_BYTES): LogDestination {
  // sonic-boom's types know its string mode only; in buffer mode its write takes Buffers.
  const sink = pino.destination({ dest: fd, sync: false, contentMode: 'buffer', maxLength: maxPendingBytes })
  return batchedLogDestination(sink as unknown as BatchSink, onDropped)
}

/**
 * sonic-boom, given strings, measures its whole pending buffer (`Buffer.byteLength`) on every write, so while a
 * write is in flight each line costs a scan of every line before it: at tens of thousands of access-log lines a
 * second that cost more than formatting them (measured: about 9% of an open breaker's fast-fail). Lines are encoded
 * once, into a buffer, and handed over in batches (LOG_BATCH_BYTES, LOG_BATCH_DELAY_MS) to sonic-boom in buffer mode,
 * which keeps lengths instead of measuring. Order is kept, and sonic-boom still does the writing: asynchronous,
 * retried on EAGAIN, flushed at exit. A line reaches stdout at most LOG_BATCH_DELAY_MS late (Envoy flushes its access
 * log every second); a process killed with SIGKILL loses what was gathered, as it loses what sonic-boom had not
 * written yet. What the sink drops (see LOG_MAX_PENDING_BYTES) is counted and reported to `onDropped` once the sink has
 * written all it held.
 */
export function batchedLogDestination (sink: BatchSink, onDropped: DropReport): LogDestination {
  let buffer = Buffer.allocUnsafe(BUFFER_BYTES)
  // The bytes of buffer[start, end) are gathered; those before start were handed over and belong to sink now.
  let start = 0
  let end = 0
  let timer: NodeJS.Timeout | null = null
  let droppedLines = 0
  let droppedBytes = 0
  sink.on('drop', (batch) => {
    droppedBytes += batch.length
    for (let at = batch.indexOf(NEWLINE); at !== -1; at = batch.indexOf(NEWLINE, at + 1)) droppedLines++
  })
  sink.on('drain', () => {
    if (droppedBytes === 0) return
    const lines = droppedLines
    const bytes = droppedBytes
    droppedLines = droppedBytes = 0
    onDropped(lines, bytes)
  })
  const handOver = (): void => {
    if (end === start) return
    sink.write(buffer.subarray(start, end))
    start = end
  }
  const onTimer = (): void => {
    timer = null
    handOver()
  }
  const flushSync = (): void => {
    handOver()
    sink.flushSync()
  }
  // pino's own exit hook flushes sonic-boom, but cannot know the lines still gathered here.
  process.once('exit', flushSync)
  return {
    write (line) {
      // Three bytes per UTF-16 unit at most: room for the line without measuring it first.
      const most = line.length * 3
      if (end + most > buffer.length) {
        handOver()
        if (most > BUFFER_BYTES) {
          sink.write(Buffer.from(line))
          return
        }
        buffer = Buffer.allocUnsafe(BUFFER_BYTES)
        start = end = 0
      }
      end += buffer.write(line, end)
      if (end - start >= LOG_BATCH_BYTES) {
        handOver()
      } else if (timer === null) {
        // Left running after a handover by size: the lines gathered after it are then handed over sooner, not later.
        timer = setTimeout(onTimer, LOG_BATCH_DELAY_MS).unref()
      }
    },
    flushSync
  }
}

const NEWLINE = 0x0a
