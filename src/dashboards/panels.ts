// The parts every Breakwater dashboard shares: the datasource and filter variables, the links between the dashboards, and panels with the house defaults.
import type * as cog from '@grafana/grafana-foundation-sdk/cog'
import * as common from '@grafana/grafana-foundation-sdk/common'
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import * as heatmap from '@grafana/grafana-foundation-sdk/heatmap'
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus'
import * as stat from '@grafana/grafana-foundation-sdk/stat'
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline'
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries'
import type { QueriedMetric } from './node-metrics.js'
import { NODE_LABEL, routeLabelOf } from './promql.js'

/** Every Breakwater dashboard carries this tag; the links between them find each other by it. */
export const DASHBOARD_TAG = 'breakwater'

/** The name of the datasource variable. */
export const DATASOURCE_VARIABLE = 'datasource'

/** Every panel and query reads the datasource the viewer picked: no datasource uid of anyone's Grafana is baked in. */
export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: `$\{${DATASOURCE_VARIABLE}}` }

/** One query of a panel: a PromQL expression and its legend. */
export interface Query {
  readonly expr: string
  /** Grafana's legend template, like `{{route}}`. */
  readonly legend: string
  /** `heatmap` for histogram buckets drawn as a heatmap (Grafana sorts the `le` buckets and de-accumulates them). */
  readonly format?: 'heatmap'
}

/** What every panel states: a title, what it shows and how to read it, the unit of its values, and its queries. */
export interface PanelSpec {
  readonly title: string
  readonly description: string
  /** A Grafana unit id: `reqps`, `s`, `percentunit`, `bytes`, `short`... */
  readonly unit: string
  readonly targets: readonly Query[]
  /**
   * Width in grid columns, of 24.
   * @default 12
   */
  readonly span?: number
  /**
   * Height in grid rows.
   * @default 8
   */
  readonly height?: number
}

/** The builder methods every panel type shares. */
interface PanelBuilderLike {
  title: (title: string) => this
  description: (description: string) => this
  unit: (unit: string) => this
  datasource: (datasource: common.DataSourceRef) => this
  withTarget: (target: cog.Builder<cog.Dataquery>) => this
  span: (w: number) => this
  height: (h: number) => this
}

function query (target: Query, index: number): prometheus.DataqueryBuilder {
  const builder = new prometheus.DataqueryBuilder()
    .datasource(DATASOURCE)
    .refId(String.fromCharCode(65 + index))
    .expr(target.expr)
    .legendFormat(target.legend)
  return target.format === 'heatmap' ? builder.format(prometheus.PromQueryFormat.Heatmap) : builder
}

function panel<B extends PanelBuilderLike> (builder: B, spec: PanelSpec): B {
  builder.title(spec.title).description(spec.description).unit(spec.unit).datasource(DATASOURCE)
    .span(spec.span ?? 12).height(spec.height ?? 8)
  spec.targets.forEach((target, i) => builder.withTarget(query(target, i)))
  return builder
}

/** A time series: lines, a legend under it listing the series with their mean and last value, one tooltip for all series. */
export function timeSeries (spec: PanelSpec): timeseries.PanelBuilder {
  return panel(new timeseries.PanelBuilder(), spec)
    .lineWidth(1)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .legend(new common.VizLegendOptionsBuilder()
      .showLegend(true)
      .displayMode(common.LegendDisplayMode.List)
      .placement(common.LegendPlacement.Bottom)
      .calcs(['mean', 'lastNotNull']))
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending))
}

/** A time series whose series stack: parts of one whole (responses by status class, calls by kind). */
export function stackedSeries (spec: PanelSpec): timeseries.PanelBuilder {
  return timeSeries(spec).fillOpacity(40).stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal))
}

/** Threshold steps: the base colour, then `color` from each `value` on. */
export function thresholds (base: string, steps: ReadonlyArray<{ readonly value: number, readonly color: string }> = []): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps([{ value: null, color: base }, ...steps])
}

/** Draws the thresholds as dashed lines: a limit to read a series against. */
export function thresholdLines (): common.GraphThresholdsStyleConfigBuilder {
  return new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Dashed)
}

/** One big number, the last value over the time range, with a sparkline. */
export function statPanel (spec: PanelSpec): stat.PanelBuilder {
  return panel(new stat.PanelBuilder(), { height: 4, ...spec })
    .graphMode(common.BigValueGraphMode.Area)
    .colorMode(common.BigValueColorMode.Value)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
}

/** A state timeline: one row per series, coloured by its value's mapping. */
export function stateTimeline (spec: PanelSpec): statetimeline.PanelBuilder {
  return panel(new statetimeline.PanelBuilder(), spec)
    .showValue(common.VisibilityMode.Auto)
    .mergeValues(true)
    .alignValue(common.TimelineValueAlignment.Left)
    .fillOpacity(80)
    .legend(new common.VizLegendOptionsBuilder()
      .showLegend(true)
      .displayMode(common.LegendDisplayMode.List)
      .placement(common.LegendPlacement.Bottom))
}

/** A heatmap of a Prometheus histogram's buckets over time (its queries use format `heatmap`). */
export function bucketHeatmap (spec: PanelSpec): heatmap.PanelBuilder {
  return panel(new heatmap.PanelBuilder(), spec)
    .calculate(false)
    .yAxis(new heatmap.YAxisConfigBuilder().unit(spec.unit))
    .cellValues(new heatmap.CellValuesBuilder().unit('short'))
    .color(new heatmap.HeatmapColorOptionsBuilder()
      .mode(heatmap.HeatmapColorMode.Scheme)
      .scheme('Oranges')
      .scale(heatmap.HeatmapColorScale.Exponential)
      .exponent(0.5)
      .steps(64))
    .showLegend()
}

/** A row heading: the panels added after it, up to the next row, are its own. */
export function row (title: string): dashboard.RowBuilder {
  return new dashboard.RowBuilder(title)
}

/** Where a dashboard's filter variables take their values from. */
export interface FilterSource {
  /** A counter or gauge every target of the dashboard exports: the `job` and `instance` choices are its labels' values. */
  readonly anchor: QueriedMetric
  /**
   * A counter or gauge labelled with the route id (`route`, or Resilience4j's `name`): the `route` choices. None on a
   * dashboard of a process that has no routes (the autoscaler): it gets no `route` variable.
   */
  readonly routes?: QueriedMetric
  /** A counter or gauge labelled with a Redis Cluster `node`: the `node` choices. None: no `node` variable. */
  readonly nodes?: QueriedMetric
}

function filterVariable (name: string, label: string, query: string, description: string): dashboard.QueryVariableBuilder {
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .description(description)
    .datasource(DATASOURCE)
    .query(query)
    .definition(query)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    // `.*` rather than Grafana's list of every value: shorter queries, and series that appear after the page loaded count.
    .allValue('.*')
    .current({ selected: true, text: 'All', value: '$__all' })
}

/** The selector of the variables after `instance`: within the chosen jobs and targets. */
const withinTargets = (metric: QueriedMetric): string => `${metric.name}{job=~"$job",instance=~"$instance"}`

function routeVariable (routes: QueriedMetric): dashboard.QueryVariableBuilder {
  const label = routeLabelOf(routes)
  if (label === null) throw new Error(`expected a metric labelled with the route, got ${routes.name}`)
  return filterVariable('route', 'Route', `label_values(${withinTargets(routes)}, ${label})`, 'Route ids of the chosen targets')
}

function nodeVariable (nodes: QueriedMetric): dashboard.QueryVariableBuilder {
  if (!nodes.labelNames.includes(NODE_LABEL)) throw new Error(`expected a metric labelled with the node, got ${nodes.name}`)
  return filterVariable('node', 'Node', `label_values(${withinTargets(nodes)}, ${NODE_LABEL})`, 'Redis Cluster masters the chosen targets measure')
}

/**
 * The `datasource`, `job` and `instance` variables, then `route` and `node` where the dashboard has them, in that
 * order (each filters the next).
 */
export function filterVariables (source: FilterSource): Array<cog.Builder<dashboard.VariableModel>> {
  return [
    new dashboard.DatasourceVariableBuilder(DATASOURCE_VARIABLE)
      .label('Data source')
      .description('The Prometheus that scrapes Breakwater')
      .type('prometheus'),
    filterVariable('job', 'Job', `label_values(${source.anchor.name}, job)`, 'Prometheus scrape jobs'),
    filterVariable('instance', 'Instance', `label_values(${source.anchor.name}{job=~"$job"}, instance)`, 'Targets of the chosen jobs'),
    ...(source.routes === undefined ? [] : [routeVariable(source.routes)]),
    ...(source.nodes === undefined ? [] : [nodeVariable(source.nodes)])
  ]
}

/** What a Breakwater dashboard is: a stable uid, a title and what it is for, and where its filters come from. */
export interface DashboardSpec extends FilterSource {
  /** Stable across releases: links, bookmarks and provisioning refer to it. */
  readonly uid: string
  readonly title: string
  readonly description: string
}

/** A dashboard with the house settings: the tag, the filter variables, and links to every other Breakwater dashboard. */
export function breakwaterDashboard (spec: DashboardSpec): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder(spec.title)
    .uid(spec.uid)
    .description(spec.description)
    .tags([DASHBOARD_TAG])
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: 'now-1h', to: 'now' })
    .refresh('30s')
    .timezone('browser')
    .link(new dashboard.DashboardLinkBuilder('Breakwater')
      .type(dashboard.DashboardLinkType.Dashboards)
      .tags([DASHBOARD_TAG])
      .asDropdown(false)
      .includeVars(true)
      .keepTime(true)
      .targetBlank(false)
      .icon('dashboard')
      .tooltip('Other Breakwater dashboards, same time range and filters'))
    .variables(filterVariables(spec))
}

/** Builds the dashboard and numbers its panels, rows included, top to bottom: Grafana wants an id unique in the dashboard. */
export function finish (builder: dashboard.DashboardBuilder): dashboard.Dashboard {
  const built = builder.build()
  built.panels?.forEach((one, i) => { one.id = i + 1 })
  // The SDK files every link under the controls menu (Grafana 12's `placement`); without it Grafana shows links in
  // the dashboard's top bar, where the way to the other dashboards belongs.
  for (const link of built.links ?? []) delete link.placement
  return built
}

/** An override property that draws a series in one colour (overrideByName). */
export function fixedColor (color: string): dashboard.DynamicConfigValue {
  return { id: 'color', value: { mode: 'fixed', fixedColor: color } }
}
