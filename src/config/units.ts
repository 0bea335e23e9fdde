// Human durations and sizes from YAML (5s, 1mb), parsed once here into milliseconds and bytes.

// Zero is never a useful duration or size here, so the patterns refuse it.
export const DURATION_PATTERN = '^[1-9][0-9]*(ms|s|m|h)$'
export const SIZE_PATTERN = '^[1-9][0-9]*(b|kb|mb|gb)$'

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const
const SIZE_UNITS_BYTES = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const

const durationRe = new RegExp(DURATION_PATTERN)
const sizeRe = new RegExp(SIZE_PATTERN)

/** `250ms`, `5s`, `1m`, `1h` to milliseconds. */
export function parseDurationMs (text: string): number {
  const match = durationRe.exec(text)
  if (match === null) throw new TypeError(`expected a duration like 5s, got ${JSON.stringify(text)}`)
  const unit = match[1] as keyof typeof DURATION_UNITS_MS
  return Number.parseInt(text, 10) * DURATION_UNITS_MS[unit]
}

/** `512kb`, `1mb`, `1gb` (binary multiples, as nginx's client_max_body_size) to bytes. */
export function parseSizeBytes (text: string): number {
  const match = sizeRe.exec(text)
  if (match === null) throw new TypeError(`expected a size like 1mb, got ${JSON.stringify(text)}`)
  const unit = match[1] as keyof typeof SIZE_UNITS_BYTES
  return Number.parseInt(text, 10) * SIZE_UNITS_BYTES[unit]
}
