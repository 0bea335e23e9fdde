// Order statistics over a run's rounds: median and min-max.

/**
 * @typedef {{ median: number, min: number, max: number, values: number[] }} Summary
 */

/**
 * @param {readonly number[]} values
 * @returns {Summary}
 */
export function summarize (values) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return { median: NaN, min: NaN, max: NaN, values: [...values] }
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? /** @type {number} */ (sorted[mid]) : (/** @type {number} */ (sorted[mid - 1]) + /** @type {number} */ (sorted[mid])) / 2
  return { median, min: /** @type {number} */ (sorted[0]), max: /** @type {number} */ (sorted[sorted.length - 1]), values: [...values] }
}
