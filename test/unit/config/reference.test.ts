// Drift guard: the README's config reference is exactly what the schema renders today.
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { ConfigSchema } from '../../../src/config/index.js'
import { CONFIG_REFERENCE_END, CONFIG_REFERENCE_START, renderConfigReference } from '../../../src/config/reference.js'

t.test('the README config reference matches the schema', async (t) => {
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8')
  const start = readme.indexOf(CONFIG_REFERENCE_START)
  const end = readme.indexOf(CONFIG_REFERENCE_END)
  t.ok(start !== -1 && end > start, `README.md has ${CONFIG_REFERENCE_START} ... ${CONFIG_REFERENCE_END}`)
  const block = readme.slice(start + CONFIG_REFERENCE_START.length, end)
  t.equal(block, `\n${renderConfigReference()}`, 'README.md config reference is stale: run `npm run docs`')
})

t.test('every key of the schema has a row, with its description', async (t) => {
  const reference = renderConfigReference()
  const { server, routes } = ConfigSchema.properties
  for (const [key, schema] of Object.entries(server.properties)) {
    t.match(reference, `| \`server.${key}\` |`, key)
    t.match(reference, schema.description ?? '', key)
  }
  for (const key of Object.keys(routes.items.properties)) t.match(reference, `| \`routes[].${key}\` |`, key)
  t.match(reference, '| `defaults.<route key>` | any `routes[]` key but `id`, `prefix` and `bulk` |')
  t.match(reference, '| `server.port` | port number from 0 to 65535 | `8080` |')
  t.match(reference, '| `routes[].timeout` | duration like 5s | `5s` |')
  t.match(reference, '| `routes[].id` | id like catalog (lower case letters, digits, - and _) | required |')
})
