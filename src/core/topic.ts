// Topic<T>: one kind of event a feature publishes (a breaker transition, a cache outcome, a finished request) and
// whoever listens (metrics, the access log, tracing). Per gateway, not per process: two gateways in one process
// (tests, a reload) never hear each other.

export type Listener<T> = (event: T) => void

export class Topic<T> {
  readonly name: string
  #listeners: ReadonlyArray<Listener<T>> = []

  /** `name`: what the README's Architecture section calls it, e.g. `breaker.transition`. */
  constructor (name: string) {
    this.name = name
  }

  /** Whether anyone listens: a publisher may skip building an event nobody hears. */
  get hasSubscribers (): boolean {
    return this.#listeners.length > 0
  }

  /** Adds `listener`; the function returned removes it. */
  subscribe (listener: Listener<T>): () => void {
    this.#listeners = [...this.#listeners, listener]
    return () => { this.#listeners = this.#listeners.filter((other) => other !== listener) }
  }

  /**
   * Hands `event` to every listener, in the order they subscribed. A listener that throws is a bug in the listener:
   * it must not fail the request that published, so the error goes to the process's uncaught handler on its own tick.
   */
  publish (event: T): void {
    const listeners = this.#listeners
    for (let i = 0; i < listeners.length; i++) {
      try {
        (listeners[i] as Listener<T>)(event)
      } catch (err) {
        process.nextTick(() => { throw err })
      }
    }
  }
}
