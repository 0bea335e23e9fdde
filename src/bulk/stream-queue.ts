// The durable bulk queue: one Redis Stream per route read through a consumer group, with a dead-letter stream beside it.
import { performance } from 'node:perf_hooks'
import { gatewayError } from '../core/index.js'
import { checkCount, type BulkQueue, type BulkQueueStats, type DeadLetter, type FailedItem, type QueuedItem } from './queue.js'

/** Ms a taken item may go untouched before another instance claims it: longer than any batch with its retries should take. */
export const DEFAULT_BULK_CLAIM_AFTER_MS = 30_000
/** The consumer group every gateway instance reads a route's stream through. */
export const BULK_CONSUMER_GROUP = 'breakwater'
/** Dead letters moved per script call in a redrive: each call is atomic, and this keeps each one short for Redis. */
export const REDRIVE_CHUNK = 100

/**
 * The commands the queue sends, as ioredis' `Redis` and `Cluster` both declare them. Structural, so that the bulk
 * feature never imports ioredis (src/redis/ builds the client). XREADGROUP and XAUTOCLAIM go through `callBuffer`:
 * ioredis has Buffer variants of them at run time but declares none, and bodies must come back as bytes.
 */
export interface StreamQueueClient {
  xadd: (key: string, id: '*', bodyField: 'body', body: Buffer) => Promise<string | null>
  xgroup: (subcommand: 'CREATE', key: string, group: string, id: '0', mkstream: 'MKSTREAM') => Promise<unknown>
  xack: (key: string, group: string, ...ids: string[]) => Promise<number>
  xclaim: (...args: [key: string, group: string, consumer: string, minIdleTime: number, ...ids: string[], justid: 'JUSTID']) => Promise<unknown[]>
  xrangeBuffer: (key: string, start: string, end: string, countToken: 'COUNT', count: number) => Promise<Array<[id: Buffer, fields: Buffer[]]>>
  eval: (script: string, numkeys: number, ...args: Array<string | number>) => Promise<unknown>
  callBuffer: (command: string, ...args: Array<string | number>) => Promise<unknown>
}

/** What the queue needs of a connection; src/redis' `createRedisClient` returns one. The caller owns and closes it. */
export interface StreamQueueConnection {
  /** The prefix of every key; the stream keys start with it. */
  readonly keyPrefix: string
  readonly client: StreamQueueClient
  /** Lets the commands of this event-loop turn go out in one write (the appends of many requests, say). */
  coalesceWrites: () => void
}

export interface StreamQueueOptions {
  /** The route's name: its keys are `<keyPrefix>bulk:{<route>}:stream` and `...:dead`, one hash slot in a Cluster. */
  readonly route: string
  /**
   * This instance's name in the consumer group (BREAKWATER_INSTANCE_ID or the hostname): after a restart under the
   * same name it takes its own unsettled items back at once. Two live instances must never share one.
   */
  readonly consumer: string
  /** A command not answered within this time is rejected (ms), so that an append never holds a client longer. */
  readonly commandTimeoutMs: number
  /**
   * Ms an item taken by another consumer may go untouched before this one claims it (XAUTOCLAIM's min-idle-time):
   * how soon the items of a crashed instance move on. The sender touches what it holds every third of this.
   * @default 30000
   */
  readonly claimAfterMs?: number
}

/** A command Redis did not answer within `commandTimeoutMs`. */
export class StreamQueueTimeoutError extends Error {
  override readonly name = 'StreamQueueTimeoutError'
  readonly code = 'ETIMEDOUT'
  constructor (readonly command: string, readonly timeoutMs: number) {
    super(`Redis did not answer ${command} within ${timeoutMs} ms`)
  }
}

/** The two keys of a route; one hash tag, so that a script may touch both in a Cluster. */
export function bulkStreamKeys (keyPrefix: string, route: string): { stream: string, dead: string } {
  const base = `${keyPrefix}bulk:{${route}}`
  return { stream: `${base}:stream`, dead: `${base}:dead` }
}

// The scripts read an entry's fields by name: `body`, and `id` on a redriven item (its first entry id otherwise).
const FIELD_LOOKUP = `
local function field (fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end
`

/** XACK then XDEL, per entry, atomically: the stream holds exactly the items not settled, so XLEN is `pending`. */
const ACK_SCRIPT = `
for i = 2, #ARGV do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return 0
`

/**
 * ARGV: group, failedAt, then (entry id, error) pairs. The body is copied inside Redis (never sent back and forth), and
 * an entry already gone (settled by an instance that claimed it meanwhile) is not dead-lettered twice.
 */
const DEAD_LETTER_SCRIPT = `${FIELD_LOOKUP}
for i = 3, #ARGV, 2 do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])[1]
  if entry then
    local id = field(entry[2], 'id') or entry[1]
    redis.call('XADD', KEYS[2], '*', 'id', id, 'body', field(entry[2], 'body') or '', 'error', ARGV[i + 1], 'failedAt', ARGV[2])
  end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return 0
`

/** Moves up to ARGV[1] dead letters, oldest first, back to the stream under their ids; two redrives never move one twice. */
const REDRIVE_SCRIPT = `${FIELD_LOOKUP}
local letters = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[1])
for _, letter in ipairs(letters) do
  redis.call('XADD', KEYS[1], '*', 'id', field(letter[2], 'id'), 'body', field(letter[2], 'body'))
  redis.call('XDEL', KEYS[2], letter[1])
end
return #letters
`

/** XLEN of both streams and the oldest entry's age on Redis' clock (its id's ms part), without reading its body out. */
const STATS_SCRIPT = `
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local age = 0
if first then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  age = math.max(0, now - tonumber(string.match(first[1], '^%d+')))
end
return { redis.call('XLEN', KEYS[1]), redis.call('XLEN', KEYS[2]), age }
`

type RawEntry = [id: Buffer, fields: Buffer[] | null]

/**
 * Keys `<keyPrefix>bulk:{<route>}:stream` (items not settled) and `...:dead` (dead letters: id, body, error, failedAt).
 * - `append` is one XADD; its entry id is the item's id. Its ms part is when Redis stored it.
 * - `take` reads, in this order: this consumer's own pending entries left by an earlier run under the same name
 *   (XREADGROUP from 0, once, at the start), entries other consumers left untouched for `claimAfterMs` (XAUTOCLAIM,
 *   at most every quarter of claimAfterMs while its scan finds nothing more), then new entries (XREADGROUP >). It
 *   never blocks, and never hands out an entry this object already handed out and not settled.
 * - The group is created (XGROUP CREATE 0 MKSTREAM) when a read finds none (NOGROUP: first use, or a Redis that lost
 *   the stream), from 0: the stream holds only unsettled items, so a new group owes all of them.
 * - `ack`, `deadLetter` and `redrive` are Lua scripts on the route's one hash slot, so each step is atomic.
 */
export class StreamQueue implements BulkQueue {
  readonly durable = true
  readonly route: string
  readonly consumer: string
  readonly claimAfterMs: number
  readonly keys: { readonly stream: string, readonly dead: string }
  readonly #connection: StreamQueueConnection
  readonly #client: StreamQueueClient
  readonly #timeoutMs: number
  /** Entry ids handed out by `take` and not settled: a claim or a recovery read must not hand them out again. */
  readonly #held = new Set<string>()
  /** Where the read of this consumer's own pending entries goes on; null once it came to their end. */
  #recoverFrom: string | null = '0'
  #claimFrom = '0-0'
  #claimDueAt = 0
  #closed = false

  constructor (connection: StreamQueueConnection, options: StreamQueueOptions) {
    const { route, consumer, commandTimeoutMs, claimAfterMs = DEFAULT_BULK_CLAIM_AFTER_MS } = options
    if (typeof route !== 'string' || route === '') throw new TypeError(`expected options.route to be a non-empty string, got ${JSON.stringify(route)}`)
    if (typeof consumer !== 'string' || consumer === '') throw new TypeError(`expected options.consumer to be a non-empty string, got ${JSON.stringify(consumer)}`)
    if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) {
      throw new RangeError(`expected options.commandTimeoutMs to be a positive number of milliseconds, got ${String(commandTimeoutMs)}`)
    }
    if (!Number.isSafeInteger(claimAfterMs) || claimAfterMs < 1) {
      throw new RangeError(`expected options.claimAfterMs to be a positive integer of milliseconds, got ${String(claimAfterMs)}`)
    }
    this.route = route
    this.consumer = consumer
    this.claimAfterMs = claimAfterMs
    this.keys = bulkStreamKeys(connection.keyPrefix, route)
    this.#connection = connection
    this.#client = connection.client
    this.#timeoutMs = commandTimeoutMs
  }

  /** Rejects with BW_ERR_BULK_QUEUE_UNAVAILABLE (503, the Redis error as its cause) when Redis is away or slow. */
  async append (body: Buffer): Promise<string> {
    if (this.#closed) throw gatewayError('BW_ERR_GATEWAY_SHUTTING_DOWN', 'the bulk queue is closed: the gateway is shutting down')
    try {
      // Never null: XADD answers null only with NOMKSTREAM.
      return await this.#command('XADD', () => this.#client.xadd(this.keys.stream, '*', 'body', body)) as string
    } catch (err) {
      throw gatewayError('BW_ERR_BULK_QUEUE_UNAVAILABLE', `route ${this.route}: the item was not stored in Redis: ${(err as Error).message}`, err)
    }
  }

  async take (count: number): Promise<QueuedItem[]> {
    checkCount('count', count)
    let items: QueuedItem[]
    try {
      items = await this.#read(count)
    } catch (err) {
      if (!(err as Error).message.startsWith('NOGROUP')) throw err
      await this.#createGroup()
      items = await this.#read(count)
    }
    for (const item of items) this.#held.add(item.entryId)
    return items
  }

  /** XCLAIM to itself with min-idle 0 and JUSTID: resets the entries' idle time without counting a delivery. */
  async touch (items: readonly QueuedItem[]): Promise<void> {
    if (items.length === 0) return
    await this.#command('XCLAIM', () => this.#client.xclaim(this.keys.stream, BULK_CONSUMER_GROUP, this.consumer, 0, ...entryIds(items), 'JUSTID'))
  }

  async ack (items: readonly QueuedItem[]): Promise<void> {
    if (items.length === 0) return
    const ids = entryIds(items)
    await this.#command('EVAL ack', () => this.#client.eval(ACK_SCRIPT, 1, this.keys.stream, BULK_CONSUMER_GROUP, ...ids))
    for (const id of ids) this.#held.delete(id)
  }

  async deadLetter (failures: readonly FailedItem[]): Promise<void> {
    if (failures.length === 0) return
    const pairs = failures.flatMap(({ item, error }) => [item.entryId, error])
    await this.#command('EVAL deadLetter', () => this.#client.eval(DEAD_LETTER_SCRIPT, 2, this.keys.stream, this.keys.dead, BULK_CONSUMER_GROUP, Date.now(), ...pairs))
    for (const { item } of failures) this.#held.delete(item.entryId)
  }

  async deadLetters (limit: number): Promise<DeadLetter[]> {
    checkCount('limit', limit)
    const entries = await this.#command('XRANGE', () => this.#client.xrangeBuffer(this.keys.dead, '-', '+', 'COUNT', limit))
    return entries.map(([, fields]) => ({
      id: String(field(fields, 'id')),
      body: field(fields, 'body') as Buffer,
      error: String(field(fields, 'error')),
      failedAtMs: Number(String(field(fields, 'failedAt')))
    }))
  }

  async redrive (): Promise<number> {
    let moved = 0
    for (;;) {
      const chunk = await this.#command('EVAL redrive', () => this.#client.eval(REDRIVE_SCRIPT, 2, this.keys.stream, this.keys.dead, REDRIVE_CHUNK)) as number
      moved += chunk
      if (chunk < REDRIVE_CHUNK) return moved
    }
  }

  async stats (): Promise<BulkQueueStats> {
    const [pending, deadLetters, oldestAgeMs] = await this.#command('EVAL stats', () => this.#client.eval(STATS_SCRIPT, 2, this.keys.stream, this.keys.dead)) as [number, number, number]
    return { pending, deadLetters, oldestAgeMs }
  }

  async close (): Promise<void> {
    this.#closed = true
  }

  /** One take's reads, in order, until `count` items: own pending (until read to the end), claims when due, new ones. */
  async #read (count: number): Promise<QueuedItem[]> {
    const items: QueuedItem[] = []
    if (this.#recoverFrom !== null) {
      const entries = await this.#readGroup(this.#recoverFrom, count)
      // Fewer than asked for: the history is read to its end, and only new entries reach this consumer from now on.
      this.#recoverFrom = entries.length < count ? null : (entries.at(-1) as RawEntry)[0].toString()
      items.push(...await this.#usable(entries))
    }
    if (items.length < count && performance.now() >= this.#claimDueAt) items.push(...await this.#claim(count - items.length))
    if (items.length < count) items.push(...await this.#usable(await this.#readGroup('>', count - items.length)))
    return items
  }

  /** XREADGROUP COUNT n, never blocking: `0`-style ids read this consumer's pending entries after it, `>` new ones. */
  async #readGroup (from: string, count: number): Promise<RawEntry[]> {
    const reply = await this.#command('XREADGROUP', () => this.#client.callBuffer(
      'xreadgroup', 'GROUP', BULK_CONSUMER_GROUP, this.consumer, 'COUNT', count, 'STREAMS', this.keys.stream, from
    )) as [[key: Buffer, entries: RawEntry[]]] | null
    // Null when `>` finds nothing new; a history read answers with the stream and an empty list instead.
    return reply === null ? [] : reply[0][1]
  }

  async #claim (count: number): Promise<QueuedItem[]> {
    const [next, entries] = await this.#command('XAUTOCLAIM', () => this.#client.callBuffer(
      'xautoclaim', this.keys.stream, BULK_CONSUMER_GROUP, this.consumer, this.claimAfterMs, this.#claimFrom, 'COUNT', count
    )) as [next: Buffer, entries: RawEntry[]]
    this.#claimFrom = next.toString()
    // Back at the start of the pending list: nothing more is claimable before some entry idles further.
    if (this.#claimFrom === '0-0') this.#claimDueAt = performance.now() + this.claimAfterMs / 4
    return await this.#usable(entries)
  }

  /**
   * The entries as items, less those this object holds (a claim can return its own, idle while Redis was away) and
   * those deleted while pending (no fields: an XDEL from outside), which are acknowledged so they stop coming back.
   */
  async #usable (entries: readonly RawEntry[]): Promise<QueuedItem[]> {
    const items: QueuedItem[] = []
    const gone: string[] = []
    for (const [rawId, fields] of entries) {
      const entryId = rawId.toString()
      if (fields === null) gone.push(entryId)
      else if (!this.#held.has(entryId)) items.push(toItem(entryId, fields))
    }
    if (gone.length > 0) await this.#command('XACK', () => this.#client.xack(this.keys.stream, BULK_CONSUMER_GROUP, ...gone))
    return items
  }

  async #createGroup (): Promise<void> {
    try {
      await this.#command('XGROUP CREATE', () => this.#client.xgroup('CREATE', this.keys.stream, BULK_CONSUMER_GROUP, '0', 'MKSTREAM'))
    } catch (err) {
      // Another instance created it first.
      if (!(err as Error).message.startsWith('BUSYGROUP')) throw err
    }
    // A new group owes this consumer nothing of its own.
    this.#recoverFrom = null
    this.#claimFrom = '0-0'
  }

  /**
   * Runs one command within `commandTimeoutMs`: the queue's own timer bounds the caller, as the cache's Redis store
   * does, since ioredis' commandTimeout only starts once a Cluster has handed the command to a node.
   */
  async #command<T> (command: string, send: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    try {
      return await new Promise<T>((resolve, reject) => {
        timer = setTimeout(() => reject(new StreamQueueTimeoutError(command, this.#timeoutMs)), this.#timeoutMs)
        this.#connection.coalesceWrites()
        send().then(resolve, reject)
      })
    } finally {
      clearTimeout(timer)
    }
  }
}

function entryIds (items: readonly QueuedItem[]): string[] {
  return items.map((item) => item.entryId)
}

/** A field's value in XRANGE / XREADGROUP's flat [name, value, ...] list. */
function field (fields: readonly Buffer[], name: string): Buffer | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if ((fields[i] as Buffer).toString() === name) return fields[i + 1]
  }
  return undefined
}

function toItem (entryId: string, fields: readonly Buffer[]): QueuedItem {
  const id = field(fields, 'id')?.toString() ?? entryId
  // Every entry is written by append or a redrive, with a body. Entry ids are `<ms>-<seq>`, the ms from Redis' clock.
  return { id, entryId, body: field(fields, 'body') as Buffer, enqueuedAtMs: Number(entryId.slice(0, entryId.indexOf('-'))) }
}
