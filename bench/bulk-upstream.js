// The bulk scenario's upstream: a node:http service storing items in PostgreSQL, one INSERT per single write, one multi-row INSERT per bulk request.
import { createServer } from 'node:http'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
// @ts-ignore -- pg ships no types and the bench does not depend on @types/pg; the few rows read are typed below.
import pg from 'pg'

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8081' },
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/test' },
    table: { type: 'string', default: `breakwater_bench_items_${process.pid}` },
    pool: { type: 'string', default: '8' }
  }
})

/** Largest request body read: a batch of 1000 items of 1 KiB is 1 MiB, so 16 MiB leaves room for any config. */
const MAX_BODY_BYTES = 16 * 1024 * 1024
const poolSize = Number(values.pool)
// Only letters, digits and _ ever reach the SQL text; everything else is a bound parameter.
if (!/^[a-z_][a-z0-9_]{0,62}$/.test(values.table)) throw new Error(`--table expects a lower-case SQL identifier, got ${values.table}`)
if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 64) throw new Error(`--pool expects a whole number from 1 to 64, got ${values.pool}`)
const table = values.table

// idleTimeoutMillis 0: the pool keeps its connections for the whole run, so their backends stay the ones pinned and
// accounted by the bench (a backend started mid-run would float over both CPUs, uncounted).
const pool = new pg.Pool({ connectionString: values.database, max: poolSize, idleTimeoutMillis: 0, application_name: 'breakwater-bench-upstream' })

// Named statements: each connection parses and plans them once, as a real service's driver would.
const INSERT_ONE = { name: 'insert-one', text: `INSERT INTO ${table} (body) VALUES ($1::jsonb) RETURNING id` }
// One statement whatever the batch's length: the array goes as one jsonb parameter, unnested in its order (ORDER BY
// the ordinality, so the ids are drawn in the items' order and RETURNING lists them in it).
const INSERT_MANY = {
  name: 'insert-many',
  text: `INSERT INTO ${table} (body) SELECT item FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS batch(item, n) ORDER BY n RETURNING id`
}

const stats = {
  table,
  /** The pool's PostgreSQL backends, for the bench to pin to the load CPU and account. */
  backendPids: /** @type {number[]} */ ([]),
  /** PostgreSQL's own processes (WAL writer, checkpointer...): their work on our commits is the upstream's cost too. */
  serverPids: /** @type {number[]} */ ([]),
  requests: { single: 0, bulk: 0, other: 0 },
  /** Items stored (committed) by each endpoint. */
  items: { single: 0, bulk: 0 },
  errors: 0,
  /** Writes received and not answered yet: the bench reads the counters once this is 0 and they stay still. */
  inFlight: 0,
  /** Milliseconds from a bulk request's headers to its answer's last byte handed to the kernel. */
  bulkMs: { count: 0, sum: 0 }
}
/** Every bulk request's duration, in arrival order: `GET /stats?bulkFrom=K` returns those from the K-th on. */
const bulkDurationsMs = /** @type {number[]} */ ([])

/**
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 */
function answer (res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** The whole request body, or null once it passed MAX_BODY_BYTES (the request is then answered 413). */
async function readBody (/** @type {import('node:http').IncomingMessage} */ req) {
  const chunks = []
  let bytes = 0
  for await (const chunk of req) {
    bytes += chunk.length
    if (bytes > MAX_BODY_BYTES) return null
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** A body that is not JSON (22P02) or not an array where one is needed (22023) is the client's error. */
function isClientError (/** @type {unknown} */ err) {
  const code = /** @type {{ code?: unknown }} */ (err)?.code
  return code === '22P02' || code === '22023'
}

/**
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {URL} url
 */
async function handle (req, res, url) {
  if (req.method === 'POST' && (url.pathname === '/items' || url.pathname === '/items/_bulk')) {
    const bulk = url.pathname === '/items/_bulk'
    if (bulk) stats.requests.bulk++
    else stats.requests.single++
    const body = await readBody(req)
    if (body === null) return answer(res, 413, { error: `body larger than ${MAX_BODY_BYTES} bytes` })
    try {
      /** @type {{ rows: { id: string }[] }} */
      const { rows } = await pool.query({ ...(bulk ? INSERT_MANY : INSERT_ONE), values: [body] })
      if (!bulk) {
        stats.items.single++
        return answer(res, 201, { id: Number(rows[0]?.id) })
      }
      stats.items.bulk += rows.length
      // bigserial ids come back as strings; within one statement they rise in the items' order.
      const ids = rows.map((row) => Number(row.id)).sort((a, b) => a - b)
      return answer(res, 200, ids.map((id) => ({ id, status: 201 })))
    } catch (err) {
      if (!isClientError(err)) throw err
      return answer(res, 400, { error: /** @type {Error} */ (err).message })
    }
  }
  stats.requests.other++
  if (req.method === 'GET' && url.pathname === '/stats') {
    const from = Number(url.searchParams.get('bulkFrom') ?? NaN)
    /** @type {Record<string, unknown>} */
    const body = { ...stats }
    if (Number.isInteger(from) && from >= 0) body.bulkDurationsMs = bulkDurationsMs.slice(from)
    // Every row the table holds, against the items the service answered as stored, and the bodies stored (the most
    // frequent five): the bench's check that what was sent is what was stored, once per run (it reads the whole table).
    if (url.searchParams.get('verify') === '1') {
      body.rows = Number((await pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n)
      /** @type {{ rows: { body: unknown, n: string }[] }} */
      const bodies = await pool.query(`SELECT body, count(*) AS n FROM ${table} GROUP BY body ORDER BY n DESC LIMIT 5`)
      body.bodies = bodies.rows.map((row) => ({ body: row.body, n: Number(row.n) }))
    }
    return answer(res, 200, body)
  }
  // The proxies' readiness probe (GET /).
  if (req.method === 'GET' && url.pathname === '/') return answer(res, 200, { service: 'bulk-upstream', table })
  return answer(res, 404, { error: `no ${req.method} ${url.pathname}` })
}

const server = createServer((req, res) => {
  const started = performance.now()
  const url = new URL(req.url ?? '/', 'http://upstream')
  const bulk = url.pathname === '/items/_bulk'
  const write = bulk || url.pathname === '/items'
  if (write) stats.inFlight++
  res.once('close', () => {
    if (write) stats.inFlight--
    if (!bulk) return
    const ms = performance.now() - started
    stats.bulkMs.count++
    stats.bulkMs.sum += ms
    bulkDurationsMs.push(ms)
  })
  handle(req, res, url).catch((err) => {
    stats.errors++
    process.stderr.write(`bulk-upstream: ${req.method} ${req.url}: ${err?.stack ?? err}\n`)
    if (!res.headersSent) answer(res, 500, { error: String(err?.message ?? err) })
    else res.destroy()
  })
})
// The proxies keep their connections to the upstream open between bursts of load.
server.keepAliveTimeout = 75_000

await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, body jsonb NOT NULL)`)
// Every connection of the pool opened now, all at once, so that the bench pins and accounts all of their backends.
const clients = await Promise.all(Array.from({ length: poolSize }, () => pool.connect()))
for (const client of clients) stats.backendPids.push(Number((await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid))
for (const client of clients) client.release()
/** @type {{ rows: { pid: number }[] }} */
const background = await pool.query("SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'")
stats.serverPids.push(...background.rows.map((row) => Number(row.pid)))
server.listen(Number(values.port), values.host)

let stopping = false
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => {
    if (stopping) return
    stopping = true
    server.closeAllConnections()
    server.close()
    // The table lives for one run: dropped on the way out, whatever the run's outcome.
    pool.query(`DROP TABLE IF EXISTS ${table}`)
      .then(() => pool.end())
      .then(() => process.exit(0), (/** @type {Error} */ err) => {
        process.stderr.write(`bulk-upstream: dropping ${table}: ${err?.stack ?? err}\n`)
        process.exit(1)
      })
  })
}
