// The monitoring config as its tools read it: prometheus.yml and alerts.yml through promtool, the alerts' unit tests, and Grafana's provisioning.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { parse } from 'yaml'
import { METRIC_DEFINITIONS } from '../../src/metrics/index.js'
import { REPO_ROOT } from '../helpers/cli.js'
import { PROMTOOL_MISSING, runPromtool, type PromtoolRun } from '../helpers/promtool.js'

interface Rule {
  readonly alert?: string
  readonly expr: string
  readonly for?: string
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
}

interface AlertTest {
  readonly alertname: string
  readonly exp_alerts: readonly unknown[]
}

const CONFIG = join(REPO_ROOT, 'config')

async function readYaml<T> (...path: string[]): Promise<T> {
  return parse(await readFile(join(CONFIG, ...path), 'utf8')) as T
}

async function alertRules (): Promise<Rule[]> {
  const file = await readYaml<{ groups: Array<{ name: string, rules: Rule[] }> }>('alerts.yml')
  return file.groups.flatMap((group) => group.rules).filter((rule) => rule.alert !== undefined)
}

/** promtool's exit code, with its output in the message when it is not 0. */
function assertSuccess (t: Test, run: PromtoolRun, what: string): void {
  t.equal(run.code, 0, `${what} exits 0; promtool said:\n${run.output}`)
}

/** A fresh directory with alerts.test.yml and alerts.yml, `mutate` applied to the latter; removed in teardown. */
async function mutatedRules (t: Test, mutate: (rules: string) => string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-alerts-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await copyFile(join(CONFIG, 'alerts.test.yml'), join(dir, 'alerts.test.yml'))
  await writeFile(join(dir, 'alerts.yml'), mutate(await readFile(join(CONFIG, 'alerts.yml'), 'utf8')))
  return dir
}

/**
 * The metric names and label matchers of a PromQL expression: strings, ranges and grouping clauses are dropped first,
 * then every identifier not followed by `(` (a function or an aggregation) nor a keyword is a metric.
 */
function selectors (expr: string): Array<{ metric: string, labels: string[] }> {
  const found: Array<{ metric: string, labels: string[] }> = []
  const bare = expr
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
  for (const m of bare.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()(\{[^}]*\})?/g)) {
    const metric = m[1] as string
    if (['and', 'or', 'unless', 'offset', 'bool'].includes(metric)) continue
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"/g)].map((l) => l[1] as string)
    found.push({ metric, labels })
  }
  return found
}

t.test('promtool check config: the config is valid and finds alerts.yml beside itself, from any directory', async (t) => {
  const rules = await alertRules()
  const elsewhere = await mkdtemp(join(tmpdir(), 'breakwater-cwd-'))
  t.teardown(() => rm(elsewhere, { recursive: true, force: true }))
  const run = await runPromtool(['check', 'config', join(CONFIG, 'prometheus.yml')], { cwd: elsewhere })
  assertSuccess(t, run, 'promtool check config')
  t.match(run.output, `SUCCESS: ${rules.length} rules found`, 'the rule file resolved relative to the config file')
})

t.test('prometheus.yml scrapes the gateway\'s /actuator/prometheus as the plan\'s circuit_breakers job, and the autoscaler\'s', async (t) => {
  const config = await readYaml<{
    global: Record<string, string>
    rule_files: string[]
    scrape_configs: Array<{ job_name: string, metrics_path: string, static_configs: Array<{ targets: string[] }> }>
  }>('prometheus.yml')
  t.same(config.global, { scrape_interval: '15s', evaluation_interval: '15s' })
  t.same(config.rule_files, ['alerts.yml'])
  t.same(config.scrape_configs, [
    { job_name: 'circuit_breakers', metrics_path: '/actuator/prometheus', static_configs: [{ targets: ['gateway:8080'] }] },
    { job_name: 'breakwater-autoscaler', metrics_path: '/actuator/prometheus', static_configs: [{ targets: ['autoscaler:9464'] }] }
  ])
})

t.test('promtool check rules: alerts.yml is valid, templates included', async (t) => {
  const run = await runPromtool(['check', 'rules', 'config/alerts.yml'])
  assertSuccess(t, run, 'promtool check rules')
  t.match(run.output, `SUCCESS: ${(await alertRules()).length} rules found`)
})

t.test('promtool test rules: every unit test in alerts.test.yml passes', async (t) => {
  const run = await runPromtool(['test', 'rules', 'config/alerts.test.yml'])
  assertSuccess(t, run, 'promtool test rules')
  t.match(run.output, 'SUCCESS')
})

t.test('each alert has a severity, a summary and a description, and unit tests where it fires and where it does not', async (t) => {
  const rules = await alertRules()
  const names = rules.map((rule) => rule.alert)
  t.same(names, [
    'BreakwaterCircuitBreakerOpen',
    'BreakwaterHighServerErrorRatio',
    'BreakwaterCacheHitRatioCollapsing',
    'BreakwaterBulkDeadLetters',
    'BreakwaterBulkPendingGrowing',
    'BreakwaterTargetDown',
    'BreakwaterRouteLatencyHigh'
  ])
  const tests = (await readYaml<{ tests: Array<{ alert_rule_test?: AlertTest[] }> }>('alerts.test.yml')).tests
    .flatMap((test) => test.alert_rule_test ?? [])
  for (const rule of rules) {
    t.ok(['warning', 'critical'].includes(rule.labels?.severity ?? ''), `${rule.alert} has severity warning or critical`)
    t.ok(rule.for !== undefined, `${rule.alert} waits with a for:`)
    t.same(Object.keys(rule.annotations ?? {}).sort(), ['description', 'runbook_url', 'summary'], `${rule.alert} has a summary, a description and a runbook`)
    const own = tests.filter((test) => test.alertname === rule.alert)
    t.ok(own.some((test) => test.exp_alerts.length > 0), `${rule.alert} has a test where it fires`)
    t.ok(own.some((test) => test.exp_alerts.length === 0), `${rule.alert} has a test where it stays quiet`)
  }
  t.same(tests.filter((test) => !names.includes(test.alertname)), [], 'no test names an alert that does not exist')
})

t.test('each alert\'s runbook_url is its own section of the README\'s Runbook, which says what it means, what to check and what to do', async (t) => {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8')
  const runbook = /^## Runbook\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1] ?? ''
  t.not(runbook, '', 'the README has a ## Runbook section')
  // GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes.
  const sections = new Map([...runbook.matchAll(/^### (.+)\n([\s\S]*?)(?=^### |$(?![\s\S]))/gm)]
    .map((m) => [(m[1] as string).toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-'), m[2] as string]))
  const rules = await alertRules()
  for (const rule of rules) {
    const anchor = /^README\.md#(.+)$/.exec(rule.annotations?.runbook_url ?? '')?.[1] ?? ''
    t.equal(anchor, (rule.alert as string).toLowerCase(), `${rule.alert}: runbook_url names its own section`)
    const text = sections.get(anchor) ?? ''
    t.ok(sections.has(anchor), `${rule.alert}: the Runbook has a section at #${anchor}`)
    for (const part of ['**What it means**', '**What to check**', '**What to do**']) t.ok(text.includes(part), `${rule.alert}: ${part}`)
  }
  t.equal(sections.size, rules.length, 'a section for each alert, and no other')
})

/** Series Prometheus makes itself for each target, which no definition names. */
const SCRAPE_SERIES = new Set(['up'])

t.test('alert expressions name only metrics and labels from the definitions', async (t) => {
  const definitions = new Map(METRIC_DEFINITIONS.map((d) => [d.name, d]))
  for (const rule of await alertRules()) {
    const used = selectors(rule.expr)
    t.ok(used.length > 0, `${rule.alert} reads a metric`)
    for (const { metric: series, labels } of used) {
      if (SCRAPE_SERIES.has(series)) continue
      // A histogram is read through its _bucket (labelled le too) and _count series.
      const histogram = /^(.*)_(bucket|count|sum)$/.exec(series)
      const metric = histogram !== null && definitions.get(histogram[1] as string)?.type === 'histogram' ? histogram[1] as string : series
      const definition = definitions.get(metric)
      if (definition === undefined) {
        t.fail(`${rule.alert} reads ${metric}, which src/metrics/definitions.ts does not define`)
        continue
      }
      for (const label of labels) t.ok(definition.labelNames.includes(label) || (label === 'le' && series.endsWith('_bucket')), `${rule.alert}: ${series} has label ${label}`)
    }
  }
})

t.test('the unit tests catch a wrong threshold, duration or aggregation', async (t) => {
  const mutations: Array<[string, string, string]> = [
    ['a breaker alerted after 45 s', '== 1\n        for: 1m', '== 1\n        for: 45s'],
    ['exactly 5% 5xx alerted', ') > 0.05', ') >= 0.05'],
    ['a hit ratio alerted at 60% of an hour earlier', '< 0.5 * (', '< 0.6 * ('],
    ['a hit ratio judged on fewer requests', 'rate(transactions_total[10m])) >= 0.1', 'rate(transactions_total[10m])) > 0.1'],
    ['dead letters summed over instances', 'max by (route) (bulk_dead_letter_items)', 'sum by (route) (bulk_dead_letter_items)'],
    ['a pending floor of 900', 'max by (route) (bulk_pending_items) > 1000', 'max by (route) (bulk_pending_items) > 900'],
    ['a target alerted down after 45 s', 'up == 0\n        for: 1m', 'up == 0\n        for: 45s'],
    ['a p99 alerted over 0.9 s', '[5m]))) > 1\n', '[5m]))) > 0.9\n'],
    ['a p99 judged on fewer requests', 'count{route!=""}[5m])) >= 0.1', 'count{route!=""}[5m])) >= 0.05'],
    ['the scrapes of /actuator taken for a route', 'bucket{route!=""}[5m]))) > 1\n          and on (route)\n            sum by (route) (rate(http_server_requests_seconds_count{route!=""}',
      'bucket[5m]))) > 1\n          and on (route)\n            sum by (route) (rate(http_server_requests_seconds_count']
  ]
  const original = await readFile(join(CONFIG, 'alerts.yml'), 'utf8')
  for (const [what, from, to] of mutations) {
    t.equal(original.split(from).length, 2, `"${from}" occurs once in alerts.yml`)
    const dir = await mutatedRules(t, (rules) => rules.replace(from, to))
    const check = await runPromtool(['check', 'rules', 'alerts.yml'], { cwd: dir })
    assertSuccess(t, check, `${what}: the mutated rules are still valid`)
    const run = await runPromtool(['test', 'rules', 'alerts.test.yml'], { cwd: dir })
    t.equal(run.code, 1, `${what}: promtool test rules fails; promtool said:\n${run.output}`)
    t.match(run.output, 'FAILED')
  }
})

t.test('a missing promtool fails with install advice', async (t) => {
  await t.rejects(runPromtool(['--version'], { path: '/nonexistent' }), { message: PROMTOOL_MISSING })
})

t.test('Grafana provisioning: the Prometheus datasource', async (t) => {
  const file = await readYaml<{ apiVersion: number, datasources: Array<Record<string, unknown>> }>('grafana', 'provisioning', 'datasources', 'prometheus.yml')
  t.equal(file.apiVersion, 1)
  t.equal(file.datasources.length, 1)
  t.match(file.datasources[0], {
    name: 'Prometheus',
    type: 'prometheus',
    uid: 'prometheus',
    access: 'proxy',
    url: 'http://prometheus:9090',
    isDefault: true,
    jsonData: { timeInterval: '15s' }
  })
})

t.test('Grafana provisioning: a file provider loads every dashboard into the Breakwater folder', async (t) => {
  const file = await readYaml<{ apiVersion: number, providers: Array<Record<string, unknown>> }>('grafana', 'provisioning', 'dashboards', 'breakwater.yml')
  t.equal(file.apiVersion, 1)
  t.equal(file.providers.length, 1)
  t.match(file.providers[0], {
    name: 'breakwater',
    type: 'file',
    folder: 'Breakwater',
    options: { path: '/var/lib/grafana/dashboards', foldersFromFilesStructure: false }
  })
})
