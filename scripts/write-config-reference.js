// Rewrites the README's config reference block from the schema: `npm run docs` (it builds dist/ first).
import { readFile, writeFile } from 'node:fs/promises'
import { CONFIG_REFERENCE_END, CONFIG_REFERENCE_START, renderConfigReference } from '../dist/config/reference.js'

const readme = new URL('../README.md', import.meta.url)
const text = await readFile(readme, 'utf8')
const start = text.indexOf(CONFIG_REFERENCE_START)
const end = text.indexOf(CONFIG_REFERENCE_END)
if (start === -1 || end < start) {
  throw new Error(`README.md needs ${CONFIG_REFERENCE_START} followed by ${CONFIG_REFERENCE_END}`)
}
const next = `${text.slice(0, start + CONFIG_REFERENCE_START.length)}\n${renderConfigReference()}${text.slice(end)}`
if (next === text) {
  console.log('README.md: config reference already up to date')
} else {
  await writeFile(readme, next)
  console.log('README.md: config reference rewritten')
}
