// What the bench commands share on their command line: progress lines on stderr, and whole-number options checked with their name.

/** A progress line, on stderr: stdout carries the report. */
export const log = (/** @type {string} */ message) => { process.stderr.write(`${message}\n`) }

/**
 * `--name`'s value as a whole number from `min` to `max`, or an error naming the option.
 * @param {string | undefined} text
 * @param {string} name
 * @param {number} min
 * @param {number} max
 */
export function bounded (text, name, min, max) {
  const n = Number(text)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} expects a whole number from ${min} to ${max}, got ${text}`)
  return n
}
