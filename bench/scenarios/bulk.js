// Scenario: single JSON writes through Breakwater's coalescing route (one bulk INSERT per batch), against the same writes sent one by one through the bare proxy (one INSERT each).
import { isDeepStrictEqual } from 'node:util'
import { bareFastifyProxy, breakwater } from '../lib/candidates.js'
import { startPgUpstream } from '../lib/pg-upstream.js'

/** One item, about 100 bytes of JSON: what every write of the run sends, and what every row must hold. */
export const ITEM = JSON.stringify({ sku: 'BW-000042', name: 'breakwater bench item', quantity: 3, price: 12.5, tags: ['bench', 'bulk'] })

/** The route's `bulk:` keys, as issue 5 sets them. */
const BATCH_SIZE = 1000
const MAX_WAIT_MS = 50
/** The allowance on top of maxWait and the upstream's bulk latency, for the p99 of a sync write. */
const P99_ALLOWANCE_MS = 5

/**
 * wrk's connections in the requests/s run. In sync mode each connection has one write waiting for its batch, so a batch
 * holds at most as many items as there are connections: at the runner's -c64 a batch never passes 64 items, which caps
 * the reduction of upstream requests at 64x and writes/s near 64 / (maxWait + bulk latency), whatever the gateway does.
 * The targets are at batchSize 1000: enough writers to fill a batch while another is in flight.
 */
const THROUGHPUT_CONNECTIONS = 1024

/** Both Breakwater candidates: the readiness endpoint, since GET / is no route of theirs. */
const READY = '/actuator/health/readiness'

/** One route for POST /items to the upstream, with `extra` YAML keys (the bulk block). */
const itemsRoute = (/** @type {string} */ extra) => (/** @type {Record<string, any>} */ services) =>
  `  - id: items\n    prefix: /items\n    methods: [POST]\n    upstream: ${services.origin.url}\n${extra}`

/** The nearest-rank percentile `p` (0-100) of `values`; NaN when there are none. */
export function percentile (/** @type {readonly number[]} */ values, /** @type {number} */ p) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return /** @type {number} */ (sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p / 100 * sorted.length))) - 1])
}

/**
 * What the upstream did during one wrk run, from its settled counters before and after (a batch still waiting in the
 * gateway when wrk stopped is counted in its run). Per write stored, not per answer wrk counted: wrk stops with up to
 * one write per connection unanswered (1024 at -c1024), which the upstream has mostly received and stored already.
 * @param {import('../lib/pg-upstream.js').UpstreamStats} before
 * @param {import('../lib/pg-upstream.js').UpstreamStats} after
 * @param {number} answers  the answers wrk counted
 * @returns {Record<string, number>}
 */
export function upstreamFigures (before, after, answers) {
  const bulkRequests = after.requests.bulk - before.requests.bulk
  const upstreamRequests = after.requests.single - before.requests.single + bulkRequests
  const stored = after.items.single - before.items.single + after.items.bulk - before.items.bulk
  const durations = after.bulkDurationsMs ?? []
  return {
    upstreamPerWrite: stored === 0 ? NaN : upstreamRequests / stored,
    storedPerAnswer: stored / answers,
    itemsPerBulk: bulkRequests === 0 ? NaN : (after.items.bulk - before.items.bulk) / bulkRequests,
    bulkMeanMs: durations.length === 0 ? NaN : durations.reduce((sum, ms) => sum + ms, 0) / durations.length,
    bulkP99Ms: percentile(durations, 99)
  }
}

/**
 * Once per run, after every round: the table holds exactly the rows the service answered as stored, and every one of
 * them is the item wrk and the probes sent.
 * @param {import('../lib/pg-upstream.js').PgUpstream} upstream
 * @param {(message: string) => void} log
 */
export async function verifyStored (upstream, log) {
  const { rows, stored, bodies } = await upstream.verify()
  const only = bodies.length === 1 && bodies[0]?.n === rows && isDeepStrictEqual(bodies[0].body, JSON.parse(ITEM))
  if (rows !== stored || !only) {
    throw new Error(`the bulk upstream's table ${upstream.table} holds ${rows} rows for ${stored} items answered as stored, ` +
      `with these bodies (most frequent first): ${JSON.stringify(bodies)}`)
  }
  log(`  bulk upstream: ${rows} rows stored, as many as answered, each the item sent`)
}

/** @type {import('../lib/runner.js').Scenario} */
export const bulk = {
  id: 'bulk',
  title: 'Bulk writes: POST /items of one ~100-byte JSON item, coalesced by Breakwater into one multi-row INSERT per batch, ' +
    'against the bare proxy sending each to the upstream\'s single-item endpoint (one INSERT each), PostgreSQL behind',
  path: '/items',
  request: { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: ITEM },
  expect: { status: 201, contentType: 'application/json' },
  throughputConnections: THROUGHPUT_CONNECTIONS,
  // 1024 writes queued in front of the plain proxies' upstream (1,500 to 3,500 INSERTs/s here) wait 0.3 to 0.7 s each,
  // and a few past 2 s when PostgreSQL's disk stalls: slow answers, not failed ones.
  timeoutSec: 10,
  async setup (ctx) {
    const upstream = await startPgUpstream({ dir: ctx.dir, log: ctx.log, settleMs: 4 * MAX_WAIT_MS })
    return {
      services: { origin: upstream },
      async stop () {
        try {
          await verifyStored(upstream, ctx.log)
        } finally {
          await upstream.stop()
        }
      }
    }
  },
  candidates: [
    bareFastifyProxy(),
    breakwater({
      id: 'breakwater-bulk',
      label: `Breakwater, \`bulk: {batchSize: ${BATCH_SIZE}, maxWait: ${MAX_WAIT_MS}ms, mode: sync}\` to /items/_bulk`,
      routes: itemsRoute(`    bulk: {path: /items/_bulk, batchSize: ${BATCH_SIZE}, maxWait: ${MAX_WAIT_MS}ms, mode: sync}\n`),
      readyPath: READY
    }),
    breakwater({ id: 'breakwater-proxy', label: 'Breakwater, the same route without `bulk:` (one upstream request per write)', routes: itemsRoute(''), readyPath: READY })
  ],
  observe: {
    before: (services) => services.origin.settled(),
    async after (services, before, run) {
      await services.origin.settled()
      const after = await services.origin.stats(`?bulkFrom=${before.bulkMs.count}`)
      return upstreamFigures(before, after, run.requests)
    }
  },
  figures: [
    { run: 'throughput', key: 'upstreamPerWrite', label: 'upstream requests per write', digits: 4, reduction: true },
    { run: 'throughput', key: 'itemsPerBulk', label: 'items per bulk request', digits: 0 },
    { run: 'throughput', key: 'storedPerAnswer', label: 'rows stored per answer', digits: 3 },
    { run: 'throughput', key: 'bulkMeanMs', label: 'upstream bulk ms, mean' },
    { run: 'throughput', key: 'bulkP99Ms', label: 'upstream bulk ms, p99' },
    { run: 'latency', key: 'bulkMeanMs', label: 'upstream bulk ms, mean' },
    { run: 'latency', key: 'bulkP99Ms', label: 'upstream bulk ms, p99' }
  ],
  targets: [
    {
      candidate: 'breakwater-bulk',
      label: 'issue 5',
      minRpsRatio: 5,
      minReduction: { run: 'throughput', key: 'upstreamPerWrite', factor: 100 },
      maxP99MsOver: { run: 'latency', key: 'bulkP99Ms', plusMs: MAX_WAIT_MS + P99_ALLOWANCE_MS }
    }
  ],
  notes: [
    'The upstream (bench/bulk-upstream.js, node:http and a pg Pool of 8, on CPU 1 with its 8 PostgreSQL backends pinned there too) ' +
    'stores each item as a jsonb row of a table made for the run (dropped at its end), in the PostgreSQL server of the machine ' +
    '(fsync and synchronous_commit as configured there): `POST /items` is one INSERT and answers 201 `{"id":n}`; ' +
    '`POST /items/_bulk` is one multi-row INSERT of the whole JSON array (`jsonb_array_elements($1::jsonb) WITH ORDINALITY`) ' +
    'and answers 200 with `{"id":n,"status":201}` per item, in order. wrk sends the same ~100-byte item on every request ' +
    '(POST, Content-Type: application/json). Breakwater\'s route is `prefix: /items, methods: [POST]`, with and without ' +
    `\`bulk: {path: /items/_bulk, batchSize: ${BATCH_SIZE}, maxWait: ${MAX_WAIT_MS}ms, mode: sync}\`; the baseline forwards each POST to /items. ` +
    `The requests/s run uses -c${THROUGHPUT_CONNECTIONS}, not -c64: a sync write holds its connection until its batch is ` +
    'answered, so a batch holds at most as many items as there are connections, and -c64 would cap batches at 64 items. ' +
    'Upstream figures come from the service\'s counters (GET /stats), read once they have settled before and after each run: ' +
    'upstream requests (single and bulk) per row stored, i.e. per client write that reached the upstream, and rows stored per answer ' +
    'wrk counted (at least 1 when no write is lost: wrk stops with up to one write per connection unanswered, most of them stored); ' +
    'the bulk latency is the service\'s time per ' +
    'bulk request, from its headers to its answer. The p99 target of a sync write is maxWait + the upstream\'s bulk p99 in the ' +
    `same -c8 run + ${P99_ALLOWANCE_MS} ms. After the last round the table is checked: as many rows as items answered as stored, each the item sent. ` +
    'CPU µs/request is the proxy\'s alone; the upstream\'s and PostgreSQL\'s time is on the load CPU.'
  ]
}
