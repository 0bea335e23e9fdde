// Every Breakwater dashboard, its committed JSON form, and the queries in it (for the drift guards and a test against a real Prometheus).
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import type * as prometheus from '@grafana/grafana-foundation-sdk/prometheus'
import { bulkDashboard } from './bulk.js'
import { cacheDashboard } from './cache.js'
import { circuitBreakersDashboard } from './circuit-breakers.js'
import { gatewayProcessDashboard } from './gateway-process.js'
import { redisClusterDashboard } from './redis-cluster.js'
import { transactionsDashboard } from './transactions.js'

/** Every dashboard, in the order the README lists them. */
export function buildDashboards (): dashboard.Dashboard[] {
  return [
    transactionsDashboard(), circuitBreakersDashboard(), cacheDashboard(), bulkDashboard(), gatewayProcessDashboard(), redisClusterDashboard()
  ]
}

/** The file a dashboard is committed as, under dashboards/: its uid, which never changes. */
export function dashboardFileName (built: dashboard.Dashboard): string {
  return `${built.uid}.json`
}

function sortKeys (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]))
}

/**
 * The JSON committed for a dashboard: keys sorted at every level, so the file changes only where the dashboard
 * does (not with the order builder calls were made in), two-space indent and a trailing newline.
 */
export function renderDashboard (built: dashboard.Dashboard): string {
  return `${JSON.stringify(sortKeys(built), null, 2)}\n`
}

/** One query of one panel. */
export interface PanelQuery {
  readonly panel: string
  readonly refId: string
  readonly expr: string
  readonly legend: string
}

/** Every panel query of a dashboard, in panel order (rows have none). */
export function panelQueries (built: dashboard.Dashboard): PanelQuery[] {
  return (built.panels ?? []).flatMap((panel) => {
    // A row has no targets of its own, nor has a text panel.
    if (!('targets' in panel) || panel.targets === undefined) return []
    return panel.targets.map((target) => {
      const query = target as prometheus.Dataquery
      return { panel: panel.title ?? '', refId: query.refId ?? '', expr: query.expr, legend: query.legendFormat ?? '' }
    })
  })
}

/** One query variable of a dashboard: `label_values(<selector>, <label>)`. */
export interface VariableQuery {
  readonly name: string
  readonly query: string
}

/** The query variables of a dashboard (the datasource variable has no query). */
export function variableQueries (built: dashboard.Dashboard): VariableQuery[] {
  return (built.templating.list ?? []).flatMap((variable) =>
    variable.type === 'query' ? [{ name: variable.name, query: String(variable.query) }] : [])
}

/** What the dashboard variables stand for when a query runs outside Grafana: every job, instance, route and node, a 1m rate window. */
export const DEFAULT_VARIABLE_VALUES: Readonly<Record<string, string>> = {
  job: '.*',
  instance: '.*',
  route: '.*',
  node: '.*',
  __rate_interval: '1m'
}

/**
 * `expr` with `$job`, `$instance`, `$route`, `$node` and `$__rate_interval` replaced, as Grafana would before sending it. A
 * variable without a value throws; `$1` is label_replace()'s regex group, not a variable.
 */
export function expandVariables (expr: string, values: Readonly<Record<string, string>> = DEFAULT_VARIABLE_VALUES): string {
  return expr.replace(/\$([a-zA-Z_]\w*)/g, (all, name: string) => {
    const value = values[name]
    if (value === undefined) throw new Error(`no value for ${all} in ${expr}`)
    return value
  })
}
