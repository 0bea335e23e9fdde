// Waiting without sleep-and-hope: poll a condition until a deadline, or race an event against one.
import { setTimeout as delay } from 'node:timers/promises'

/** Polls `condition` every `intervalMs` until it holds; throws naming `what` once `timeoutMs` has passed. */
export async function waitUntil (condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await delay(intervalMs)
  }
}

/** `promise`, or a rejection naming `what` once `timeoutMs` has passed. */
export async function withDeadline<T> (promise: Promise<T>, what: string, timeoutMs = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)) }, timeoutMs)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}
