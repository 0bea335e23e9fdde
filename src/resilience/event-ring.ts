// A fixed-size ring of the latest breaker events: the newest replace the oldest.

/** Events kept per breaker for GET /actuator/circuitbreakerevents (Resilience4j's default event buffer is 100). */
export const DEFAULT_EVENT_CAPACITY = 100

export class EventRing<T> {
  readonly capacity: number
  readonly #items: T[] = []
  #next = 0

  constructor (capacity: number = DEFAULT_EVENT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`expected capacity to be a positive integer, got ${capacity}`)
    this.capacity = capacity
  }

  push (item: T): void {
    if (this.#items.length < this.capacity) this.#items.push(item)
    else this.#items[this.#next] = item
    this.#next = (this.#next + 1) % this.capacity
  }

  /** Oldest first. */
  toArray (): T[] {
    if (this.#items.length < this.capacity) return this.#items.slice()
    return [...this.#items.slice(this.#next), ...this.#items.slice(0, this.#next)]
  }
}
