// The worker thread of ConfigParser: parses config text as parseConfig does, and answers its config or its issues.
import { parentPort } from 'node:worker_threads'
import { ConfigError } from './config-error.js'
import { parseConfig } from './load.js'
import type { ParseRequest, ParseResponse } from './parser.js'

const port = parentPort
if (port === null) throw new Error('expected to run in a worker thread (see ConfigParser)')
port.on('message', ({ id, text, file, env, options }: ParseRequest) => {
  let response: ParseResponse
  try {
    response = { id, kind: 'config', config: parseConfig(text, file, env, options) }
  } catch (err) {
    response = err instanceof ConfigError
      ? { id, kind: 'issues', file: err.file, issues: err.issues }
      : { id, kind: 'failed', message: err instanceof Error ? err.message : String(err) }
  }
  port.postMessage(response)
})
