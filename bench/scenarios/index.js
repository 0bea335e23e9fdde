// The bench's scenarios, by id; a new one (breaker open, cache hits, bulk writes) is a file here plus a line below.
import { breakerOpen } from './breaker-open.js'
import { bulk } from './bulk.js'
import { cacheHits } from './cache-hits.js'
import { passthrough } from './passthrough.js'
import { reload } from './reload.js'

/** @type {readonly import('../lib/runner.js').Scenario[]} */
export const SCENARIOS = [passthrough, breakerOpen, cacheHits, bulk, reload]
