// One registry rendered in the Prometheus text format or in OpenMetrics, one scrape at a time.
import { openMetricsContentType, prometheusContentType, type Registry, type RegistryContentType } from 'prom-client'

export const PROMETHEUS_CONTENT_TYPE = prometheusContentType
export const OPENMETRICS_CONTENT_TYPE = openMetricsContentType

/**
 * prom-client renders OpenMetrics by switching the registry's format and stripping `_total` from every counter's
 * name for good, so scrapes take turns and each OpenMetrics one puts the names back.
 */
export class Exposition {
  #scrapes: Promise<unknown> = Promise.resolve()

  constructor (readonly registry: Registry<RegistryContentType>) {}

  /** The content type of `render(openMetrics)`. */
  contentType (openMetrics: boolean): string {
    return openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE
  }

  /** Every metric in the Prometheus text format 0.0.4, or OpenMetrics 1.0.0. */
  async render (openMetrics = false): Promise<string> {
    const run = this.#scrapes.then(async () => await (openMetrics ? this.#openMetrics() : this.registry.metrics()))
    this.#scrapes = run.catch(() => {})
    return await run
  }

  async #openMetrics (): Promise<string> {
    const counters = (this.registry.getMetricsAsArray() as unknown as Array<{ type: string, name: string }>)
      .filter((metric) => metric.type === 'counter')
      .map((metric) => [metric, metric.name] as const)
    this.registry.setContentType(openMetricsContentType)
    try {
      return await this.registry.metrics()
    } finally {
      this.registry.setContentType(prometheusContentType)
      for (const [metric, name] of counters) metric.name = name
    }
  }
}
