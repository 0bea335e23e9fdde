// Hot reload: the config file read again, validated as `breakwater check` does, and applied whole or not at all; one
// reload at a time, whatever asked for it (SIGHUP, POST /actuator/refresh, a watched file change).
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { isDeepStrictEqual } from 'node:util'
import type { FastifyBaseLogger } from 'fastify'
import { ConfigError, ConfigParser, type ConfigIssue, type GatewayConfig } from '../config/index.js'
import type { GatewayMetrics } from '../metrics/index.js'
import type { RoutesChange } from './route-runtimes.js'

/** What asked for a reload, as the log line says it. */
export type ReloadTrigger = 'signal' | 'refresh' | 'watch'

/** A reload that applied: the new generation and what it changed. */
export interface ReloadApplied extends RoutesChange {
  readonly generation: number
  /** Settings that changed in the file but take a restart (the old values stay in force), like `server.port`. */
  readonly restartRequired: readonly string[]
}

export type ReloadOutcome =
  | { readonly kind: 'applied', readonly applied: ReloadApplied }
  | { readonly kind: 'refused', readonly error: ConfigError }
  /** A watched file's event without a change of its content: nothing to do. */
  | { readonly kind: 'unchanged' }

/** The config now serving. */
export interface ConfigGeneration {
  readonly generation: number
  /** SHA-256 of the file's bytes, hex; of the config object, as JSON, when it came from no file. */
  readonly sha256: string
}

export interface ConfigReloaderOptions {
  /** The config file, read again at each reload; null for a gateway built from a config object (nothing to reload). */
  readonly file: string | null
  readonly initial: GatewayConfig
  /** Makes `config` the one serving and says which routes it changed; never throws for a valid config. */
  readonly apply: (config: GatewayConfig) => RoutesChange
  readonly metrics: GatewayMetrics
  readonly log: FastifyBaseLogger
  /** Where `${VAR}` references take their values. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>
}

/**
 * Settings read once, at the start: a reload that changes them applies the rest and says a restart is needed. The
 * listeners are bound, the Redis connection is shared by the cache and the bulk queues, Node's header limits are the
 * server's own options, and the shutdown's deadline is armed by the command line.
 */
const RESTART_ONLY: ReadonlyArray<{ readonly key: string, readonly of: (config: GatewayConfig) => unknown }> = [
  { key: 'server.host', of: (config) => config.server.host },
  { key: 'server.port', of: (config) => config.server.port },
  { key: 'server.maxHeaders', of: (config) => config.server.maxHeaders },
  { key: 'server.headersTimeout', of: (config) => config.server.headersTimeoutMs },
  { key: 'server.shutdownTimeout', of: (config) => config.server.shutdownTimeoutMs },
  { key: 'server.watchConfig', of: (config) => config.server.watchConfig },
  // The files' contents rotate live (server/tls.ts); which files, and the TLS settings, are the listener's own.
  { key: 'server.tls', of: (config) => config.server.tls },
  { key: 'management.host', of: (config) => config.management.host },
  { key: 'management.port', of: (config) => config.management.port },
  { key: 'redis', of: (config) => config.redis }
]

export class ConfigReloader {
  readonly #options: ConfigReloaderOptions
  /** The config the process started with: what the restart-only settings still are. */
  readonly #started: GatewayConfig
  #current: ConfigGeneration
  /** The reload under way: the next one waits for it. */
  #queue: Promise<unknown> = Promise.resolve()
  /** Parses off the event loop: a reload must not stall the requests around it. */
  readonly #parser = new ConfigParser()

  constructor (options: ConfigReloaderOptions, sha256: string) {
    this.#options = options
    this.#started = options.initial
    this.#current = { generation: 1, sha256 }
    options.metrics.setConfig(1, Date.now())
  }

  get current (): ConfigGeneration {
    return this.#current
  }

  /** Whether there is a file to reload. */
  get reloadable (): boolean {
    return this.#options.file !== null
  }

  /**
   * Reads the file and applies it, after the reloads asked before. `onlyIfChanged` (a watched file's event) skips a
   * file whose bytes are those serving.
   */
  async reload (trigger: ReloadTrigger, onlyIfChanged = false): Promise<ReloadOutcome> {
    const run = this.#queue.then(async () => await this.#reload(trigger, onlyIfChanged))
    this.#queue = run.catch(() => {})
    return await run
  }

  async #reload (trigger: ReloadTrigger, onlyIfChanged: boolean): Promise<ReloadOutcome> {
    const { file, metrics, log } = this.#options
    if (file === null) throw new Error('expected a config file to reload, got a gateway built from a config object')
    let config: GatewayConfig
    let sha256: string
    try {
      const bytes = await readFile(file).catch((err: Error) => {
        throw new ConfigError(file, [{ line: 0, col: 0, path: '', message: `cannot read the config file: ${err.message}` }])
      })
      sha256 = sha256Of(bytes)
      if (onlyIfChanged && sha256 === this.#current.sha256) return { kind: 'unchanged' }
      config = await this.#parser.parse(bytes.toString('utf8'), file, this.#options.env ?? process.env, { requireRoutes: true })
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      metrics.countReload('failure')
      log.error({ trigger, generation: this.#current.generation, errors: err.issues.map(issueText) },
        `config reload refused (${trigger}): ${err.issues.length} error${err.issues.length === 1 ? '' : 's'} in ${file}; generation ${this.#current.generation} keeps serving\n${err.message}`)
      return { kind: 'refused', error: err }
    }
    const change = this.#options.apply(config)
    const generation = this.#current.generation + 1
    this.#current = { generation, sha256 }
    const restartRequired = RESTART_ONLY.filter(({ of }) => !isDeepStrictEqual(of(this.#started), of(config))).map(({ key }) => key)
    metrics.countReload('success')
    metrics.setConfig(generation, Date.now())
    const applied: ReloadApplied = { generation, ...change, restartRequired }
    const summary = `config reloaded (${trigger}): generation ${generation}; changed [${change.changed.join(', ')}], added [${change.added.join(', ')}], removed [${change.removed.join(', ')}]`
    const fields = { trigger, sha256, ...applied }
    if (restartRequired.length === 0) log.info(fields, summary)
    else log.warn(fields, `${summary}; ${restartRequired.join(', ')} changed and take a restart: the old values stay in force`)
    return { kind: 'applied', applied }
  }

  /**
   * Starts the parser's worker ahead of the first reload, on the file as it is: loading and compiling its modules
   * takes a few hundred ms of the worker's thread, which a reload would otherwise wait for. Its outcome is not used.
   */
  prepare (): void {
    const { file, env } = this.#options
    if (file === null) return
    readFile(file, 'utf8')
      .then(async (text) => await this.#parser.parse(text, file, env ?? process.env))
      .catch(() => {})
  }

  /** Stops the parser's worker, once the reloads asked for are done. */
  async close (): Promise<void> {
    await this.#queue
    await this.#parser.close()
  }
}

export function sha256Of (bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** An issue as its one line of text, for the log's fields. */
function issueText (issue: ConfigIssue): string {
  return `${issue.line}:${issue.col} ${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`
}
