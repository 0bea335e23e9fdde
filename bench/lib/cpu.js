// CPU time of one process (utime+stime in /proc/PID/stat) and busy time of one CPU (/proc/stat), in seconds.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/** USER_HZ: the unit of the times in /proc (100 on every Linux this runs on; asked anyway). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** The resolution of the figures below, in seconds. */
export const CPU_TICK_SECONDS = 1 / CLOCK_TICKS

/** The fields of /proc/PID/stat from field 3 (state) on: comm (field 2) may hold spaces and parentheses. */
function statFields (/** @type {number} */ pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/**
 * User plus system CPU time of a process, all its threads (V8's GC and libuv's pool included), in seconds.
 * @param {number} pid
 */
export function processCpuSeconds (pid) {
  const fields = statFields(pid)
  // utime and stime are fields 14 and 15; fields[0] is field 3.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/**
 * The time of one CPU since boot, in seconds: busy (anything but idle and iowait) and total.
 * @param {number} cpu
 * @returns {{ busy: number, total: number }}
 */
export function cpuTimes (cpu) {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `))
  if (line === undefined) throw new Error(`/proc/stat has no line for cpu${cpu}`)
  // user nice system idle iowait irq softirq steal (guest time is already counted in user).
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)
  return { busy: busy / CLOCK_TICKS, total: (busy + (idle ?? 0) + (iowait ?? 0)) / CLOCK_TICKS }
}

/**
 * The pids whose parent is `pid` (nginx's worker under its master).
 * @param {number} pid
 * @returns {number[]}
 */
export function childPids (pid) {
  const children = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (Number(statFields(Number(entry))[1]) === pid) children.push(Number(entry))
    } catch {
      // The process exited while the list was read.
    }
  }
  return children
}
