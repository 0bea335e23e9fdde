// A strict HTTP-date parser (RFC 9110 section 5.6.7): Date.parse takes almost anything, a cache must not.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const MONTH = MONTHS.join('|')
const DAY = 'Mon|Tue|Wed|Thu|Fri|Sat|Sun'
const LONG_DAY = 'Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday'

/** `Sun, 06 Nov 1994 08:49:37 GMT`: what senders must send. */
const IMF_FIXDATE = new RegExp(`^(?:${DAY}), (\\d\\d) (${MONTH}) (\\d{4}) (\\d\\d):(\\d\\d):(\\d\\d) GMT$`)
/** `Sunday, 06-Nov-94 08:49:37 GMT`: obsolete, still accepted. */
const RFC_850 = new RegExp(`^(?:${LONG_DAY}), (\\d\\d)-(${MONTH})-(\\d\\d) (\\d\\d):(\\d\\d):(\\d\\d) GMT$`)
/** `Sun Nov  6 08:49:37 1994`: ANSI C's asctime(), obsolete, still accepted. */
const ASCTIME = new RegExp(`^(?:${DAY}) (${MONTH}) ( \\d|\\d\\d) (\\d\\d):(\\d\\d):(\\d\\d) (\\d{4})$`)

/**
 * The time (ms since the epoch) an HTTP-date names, or null when `value` is not one of its three formats exactly
 * (case, spaces, two-digit fields and GMT as written; RFC 9110 section 5.6.7): `2024-01-01`, `Sun, 6 Nov 1994 ...`,
 * `... UTC` and doubled spaces are not HTTP-dates. A two-digit RFC 850 year more than 50 years after `now` is taken
 * from the century before, as that section requires. The day name is not checked against the date.
 */
export function parseHttpDate (value: string, now: number): number | null {
  let match = IMF_FIXDATE.exec(value)
  if (match !== null) return timeOf(Number(match[3]), match[2] as string, match[1] as string, match.slice(4, 7))
  match = RFC_850.exec(value)
  if (match !== null) {
    const current = new Date(now).getUTCFullYear()
    let year = current - (current % 100) + Number(match[3])
    if (year > current + 50) year -= 100
    return timeOf(year, match[2] as string, match[1] as string, match.slice(4, 7))
  }
  match = ASCTIME.exec(value)
  if (match !== null) return timeOf(Number(match[6]), match[1] as string, (match[2] as string).trim(), match.slice(3, 6))
  return null
}

/** The time of a parsed date, or null when a field is out of range (31 Feb, 24:00:00); a leap second (60) is allowed. */
function timeOf (year: number, month: string, day: string, clock: readonly string[]): number | null {
  const monthIndex = MONTHS.indexOf(month)
  const [hour, minute, second] = clock.map(Number) as [number, number, number]
  const date = Number(day)
  if (hour > 23 || minute > 59 || second > 60 || date < 1) return null
  // setUTCFullYear, not Date.UTC, which reads years 0-99 as 1900-1999.
  const time = new Date(0)
  time.setUTCFullYear(year, monthIndex, date)
  // 31 Feb rolls over into March: a date that does not come back as written does not exist.
  if (time.getUTCDate() !== date) return null
  return time.setUTCHours(hour, minute, second)
}
