// neostandard (fastify's style) with its TypeScript rules.
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'coverage/**', '.tap/**', '.scratch/**', 'dashboards/**'] })
]
