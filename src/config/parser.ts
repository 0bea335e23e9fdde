// ConfigParser: parseConfig in a worker thread, for reloads while traffic flows. Parsing and validating a config of
// 100 routes takes 10 to 30 ms and leaves megabytes of garbage: on the event loop that is a stall of every request
// and old-generation collections after it; in a worker it is neither. The worker starts on the first parse and stays.
import { Worker } from 'node:worker_threads'
import { ConfigError, type ConfigIssue } from './config-error.js'
import { deepFreeze, type LoadOptions } from './load.js'
import type { GatewayConfig } from './schema.js'

type Env = Readonly<Record<string, string | undefined>>

/** What the parser sends its worker. */
export interface ParseRequest {
  readonly id: number
  readonly text: string
  readonly file: string
  readonly env: Env
  readonly options: LoadOptions
}

/** What the worker answers: the config, its issues, or a fault of the parser itself. */
export type ParseResponse =
  | { readonly id: number, readonly kind: 'config', readonly config: GatewayConfig }
  | { readonly id: number, readonly kind: 'issues', readonly file: string, readonly issues: readonly ConfigIssue[] }
  | { readonly id: number, readonly kind: 'failed', readonly message: string }

export class ConfigParser {
  #worker: Worker | null = null
  #closed = false
  #next = 0
  readonly #pending = new Map<number, { resolve: (config: GatewayConfig) => void, reject: (err: Error) => void }>()

  /** parseConfig(text, file, env, options), off the event loop: resolves the frozen config, rejects with its ConfigError. */
  async parse (text: string, file: string, env: Env, options: LoadOptions = {}): Promise<GatewayConfig> {
    // A parse asked for after close (a warm-up still reading its file) must not start a worker nobody stops.
    if (this.#closed) throw new Error('the config parser is closed')
    const id = this.#next++
    const answer = new Promise<GatewayConfig>((resolve, reject) => { this.#pending.set(id, { resolve, reject }) })
    this.#started().postMessage({ id, text, file, env: { ...env }, options } satisfies ParseRequest)
    return await answer
  }

  /** Stops the worker for good; a parse under way rejects, and so does every parse after. */
  async close (): Promise<void> {
    this.#closed = true
    const worker = this.#worker
    this.#worker = null
    await worker?.terminate()
  }

  #started (): Worker {
    if (this.#worker !== null) return this.#worker
    const worker = new Worker(new URL('./parse-worker.js', import.meta.url))
    // Idle between reloads, it must not keep a stopping process alive.
    worker.unref()
    worker.on('message', (response: ParseResponse) => {
      const pending = this.#pending.get(response.id)
      if (pending === undefined) return
      this.#pending.delete(response.id)
      if (response.kind === 'config') pending.resolve(deepFreeze(response.config))
      else if (response.kind === 'issues') pending.reject(new ConfigError(response.file, response.issues))
      else pending.reject(new Error(`the config parser failed: ${response.message}`))
    })
    const fail = (err: Error): void => {
      if (this.#worker === worker) this.#worker = null
      for (const pending of this.#pending.values()) pending.reject(err)
      this.#pending.clear()
    }
    worker.on('error', fail)
    worker.on('exit', (code) => { fail(new Error(`the config parser's worker exited (code ${code})`)) })
    this.#worker = worker
    return worker
  }
}
