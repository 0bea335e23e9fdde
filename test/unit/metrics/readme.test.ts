// The README's metrics table and the metric definitions stay equal: names, types and labels are a public contract.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { AUTOSCALER_METRIC_DEFINITIONS, METRIC_DEFINITIONS } from '../../../src/metrics/index.js'

t.test('the README lists every metric, the gateway\'s then the autoscaler\'s, with its type and labels, and no other', async (t) => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  const listed = [...readme.matchAll(/^\| `([a-z0-9_]+)` \| (counter|gauge|histogram) \| ([a-z_, ]*) \|/gm)]
    .map((m) => ({ name: m[1], type: m[2], labels: m[3] }))
  t.same(listed, [...METRIC_DEFINITIONS, ...AUTOSCALER_METRIC_DEFINITIONS].map((d) => ({ name: d.name, type: d.type, labels: d.labelNames.join(', ') })))
})
