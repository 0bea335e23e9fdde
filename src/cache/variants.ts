// Several responses per URL, one per value of the fields their Vary names, found through an index at the URL's key (Varnish's secondary key).
import { encodeEntry, type CacheEntry } from './entry.js'
import { fieldValue, variantId, variantKeys, type CacheKeys, type HeaderFields } from './key.js'
import { varyNames } from './policy.js'
import type { CacheStore } from './store.js'

/**
 * What the URL's key holds once a response to it had a Vary: the names it varies on and its variants, oldest first. A
 * response without Vary is stored under the URL's key itself, so a hit on it costs one read, as before variants.
 */
export interface VariantIndex {
  /** The path the variants answer, without the query: what a purge by path prefix filters on (as an entry's `path`). */
  readonly path: string
  /** The Vary field names of the newest variant, lower-case, sorted, each once. */
  readonly names: readonly string[]
  /** Oldest first. `id` is the variant key's last part (`variantId`); `expiresAt` in ms since the epoch. */
  readonly variants: ReadonlyArray<{ readonly id: string, readonly expiresAt: number }>
}

/** What a read found for a request: the keys it ended at (a variant's, or the URL's), the value there and the path's marker. */
export interface FoundValue {
  readonly keys: CacheKeys
  readonly value: Buffer | null
  /** The path's invalidation marker (`CacheKeys.invalidation`), or null. */
  readonly marker: Buffer | null
}

export interface VariantStoreOptions {
  /** Variants kept per URL (at least 1); storing one more deletes the oldest. */
  readonly maxVariants: number
  /**
   * The clock the variants' expiry is kept on, in ms.
   * @default Date.now
   */
  readonly now?: () => number
}

/** Bumped whenever the index layout changes: an index of another version reads as an absent URL. */
export const VARIANT_INDEX_FORMAT_VERSION = 1

/** `B`, `V`: an index, never an entry (`BW`, see entry.ts). */
const MAGIC_0 = 0x42
const MAGIC_1 = 0x56
/** Magic (2 bytes) and version (1), then the index as UTF-8 JSON. */
const PREAMBLE_BYTES = 3

/** Indexes decoded and variant keys hashed are remembered for this many URLs and requests; past it, a memo starts over. */
const MEMO_SIZE = 10_000

/**
 * Reads and writes entries with their variants over a byte store. A lookup reads the URL's key and its invalidation
 * marker in one `get`; only when that key holds an index does a second `get` read the variant, in the same hash slot.
 *
 * The index is read, changed and written back without a transaction. Writes to one URL from this process go one at a
 * time; two instances storing two new variants of one URL at once may each drop the other's from the index. That
 * variant is still found (its key comes from the request, not from the index) and lives out its TTL; it only escapes
 * the count until it is stored again.
 */
export class VariantStore {
  readonly maxVariants: number
  readonly #store: CacheStore
  readonly #now: () => number
  /** The last write under way to each URL's key: the next one waits for it. */
  readonly #writing = new Map<string, Promise<void>>()
  /** The last index decoded for each URL's key, with its bytes: a hit on a variant parses no JSON when they are the same. */
  readonly #indexes = new Map<string, { readonly value: Buffer, readonly index: VariantIndex | null }>()
  /** Variant keys by URL, Vary names and the request's values as sent: a hit on a variant hashes nothing. */
  readonly #variantKeys = new Map<string, CacheKeys>()

  constructor (store: CacheStore, options: VariantStoreOptions) {
    const { maxVariants, now = Date.now } = options
    if (!Number.isSafeInteger(maxVariants) || maxVariants < 1) {
      throw new RangeError(`expected options.maxVariants to be a positive integer, got ${String(maxVariants)}`)
    }
    this.maxVariants = maxVariants
    this.#store = store
    this.#now = now
  }

  /** What the store holds for a request with `headers` under the URL's `keys`. Rejects when the store does. */
  async get (keys: CacheKeys, headers: HeaderFields): Promise<FoundValue> {
    const [value = null, marker = null] = await this.#store.get([keys.entry, keys.invalidation])
    const variant = this.#variantOf(keys, value, headers)
    if (variant === null) return { keys, value, marker }
    const [stored = null] = await this.#store.get([variant.entry])
    return { keys: variant, value: stored, marker }
  }

  /** `get` answered at once from a store in this process (see CacheStore.peek), or undefined when it cannot. */
  peek (keys: CacheKeys, headers: HeaderFields): FoundValue | undefined {
    const found = this.#store.peek?.([keys.entry, keys.invalidation])
    if (found === undefined) return undefined
    const [value = null, marker = null] = found
    const variant = this.#variantOf(keys, value, headers)
    if (variant === null) return { keys, value, marker }
    const stored = this.#store.peek?.([variant.entry])
    return stored === undefined ? undefined : { keys: variant, value: stored[0] ?? null, marker }
  }

  /**
   * Stores `entry`, the response to a request with `headers`, for `ttlMs`; `keys` are those its lookup ended at (see
   * `get`). Without Vary, under the URL's key: when the lookup went through an index, its variants are deleted (an
   * index another instance wrote since is left to expire). With Vary, under its variant's key, added to the URL's
   * index as the newest; past `maxVariants`, the oldest are deleted. A Vary naming other fields than the index does
   * starts the index over (the old variants could no longer be found). Entries with `Vary: *` are never stored
   * (RFC 9111 section 4.1, see `storability`).
   */
  async set (keys: CacheKeys, headers: HeaderFields, entry: CacheEntry, ttlMs: number): Promise<void> {
    const write = (this.#writing.get(keys.primary) ?? Promise.resolve()).then(async () => { await this.#write(keys, headers, entry, ttlMs) })
    // The next write waits for this one, failed or not; the last one leaves no trace.
    const settled: Promise<void> = write.catch(() => {}).then(() => {
      if (this.#writing.get(keys.primary) === settled) this.#writing.delete(keys.primary)
    })
    this.#writing.set(keys.primary, settled)
    await write
  }

  async #write (keys: CacheKeys, headers: HeaderFields, entry: CacheEntry, ttlMs: number): Promise<void> {
    const names = [...new Set(varyNames(entry.headers))].sort()
    // The common case, one write as before variants: no Vary, for a request whose lookup found no index.
    if (names.length === 0 && keys.entry === keys.primary) {
      await this.#store.set(keys.primary, encodeEntry(entry), ttlMs)
      return
    }
    const [current = null] = await this.#store.get([keys.primary])
    const previous = current === null ? null : decodeVariantIndex(current)
    const keyOf = (id: string): string => `${keys.primary}:v:${id}`
    if (names.length === 0) {
      await this.#store.set(keys.primary, encodeEntry(entry), ttlMs)
      if (previous !== null) await this.#store.delete(previous.variants.map(({ id }) => keyOf(id)))
      return
    }
    const now = this.#now()
    const id = variantId(names, headers)
    const same = previous !== null && previous.names.join() === names.join()
    const kept = same ? previous.variants.filter((variant) => variant.id !== id && variant.expiresAt > now) : []
    const variants = [...kept, { id, expiresAt: now + ttlMs }]
    const evicted = variants.splice(0, Math.max(0, variants.length - this.maxVariants))
    if (previous !== null && !same) evicted.push(...previous.variants)
    // The evicted go first, so once the new variant answers they are gone. The index goes last: until then a request
    // for this variant reads the URL's key as the first request did, and so waits for its fetch (see RouteCache).
    if (evicted.length > 0) await this.#store.delete(evicted.map((variant) => keyOf(variant.id)))
    await this.#store.set(keyOf(id), encodeEntry(entry), ttlMs)
    const index: VariantIndex = { path: entry.path, names, variants }
    await this.#store.set(keys.primary, encodeVariantIndex(index), Math.max(...variants.map((variant) => variant.expiresAt)) - now)
  }

  /** The variant's keys when `value` is an index, else null. */
  #variantOf (keys: CacheKeys, value: Buffer | null, headers: HeaderFields): CacheKeys | null {
    if (value === null || !isVariantIndex(value)) return null
    let last = this.#indexes.get(keys.primary)
    if (last === undefined || !last.value.equals(value)) {
      if (this.#indexes.size >= MEMO_SIZE) this.#indexes.clear()
      last = { value, index: decodeVariantIndex(value) }
      this.#indexes.set(keys.primary, last)
    }
    const names = last.index?.names
    if (names === undefined) return null
    let memo = `${keys.primary}\0${names.join()}`
    for (const name of names) memo += `\0${fieldValue(headers, name) ?? '\u0001'}`
    let variant = this.#variantKeys.get(memo)
    if (variant === undefined) {
      if (this.#variantKeys.size >= MEMO_SIZE) this.#variantKeys.clear()
      variant = variantKeys(keys, names, headers)
      this.#variantKeys.set(memo, variant)
    }
    return variant
  }
}

/** One Buffer: `BV`, the format version, the index as UTF-8 JSON. */
export function encodeVariantIndex (index: VariantIndex): Buffer {
  const preamble = Buffer.from([MAGIC_0, MAGIC_1, VARIANT_INDEX_FORMAT_VERSION])
  return Buffer.concat([preamble, Buffer.from(JSON.stringify(index), 'utf8')])
}

/** Whether `value` starts as an index does: two byte compares, so an entry read on a hit costs no parse. */
export function isVariantIndex (value: Buffer): boolean {
  return value.length >= PREAMBLE_BYTES && value[0] === MAGIC_0 && value[1] === MAGIC_1
}

/** The index in `value`, or null for anything else (an entry, another version, bad JSON). Never throws. */
export function decodeVariantIndex (value: Buffer): VariantIndex | null {
  if (!isVariantIndex(value) || value[2] !== VARIANT_INDEX_FORMAT_VERSION) return null
  let index: unknown
  try {
    index = JSON.parse(value.toString('utf8', PREAMBLE_BYTES))
  } catch {
    return null
  }
  return isVariantIndexShape(index) ? index : null
}

function isVariantIndexShape (index: unknown): index is VariantIndex {
  if (typeof index !== 'object' || index === null) return false
  const { path, names, variants } = index as Record<string, unknown>
  return typeof path === 'string' &&
    Array.isArray(names) && names.length > 0 && names.every((name) => typeof name === 'string') &&
    Array.isArray(variants) && variants.every((variant: unknown) => typeof variant === 'object' && variant !== null &&
      typeof (variant as Record<string, unknown>).id === 'string' && Number.isFinite((variant as Record<string, unknown>).expiresAt))
}
