// The autoscaler process's /actuator: prometheus, and health with its role (leader or standby) and the cluster it watches.
import type { FastifyInstance } from 'fastify'
import type { LoopStatus } from '../autoscaler/index.js'
import { gatewayError } from '../core/index.js'
import { compareNames, type HealthComponent, type HealthStatus } from './health.js'
import { ACTUATOR_PREFIX, acceptsOpenMetrics } from './plugin.js'

export interface AutoscalerActuatorOptions {
  readonly metrics: {
    metrics: (openMetrics: boolean) => Promise<string>
    contentType: (openMetrics: boolean) => string
  }
  readonly status: () => LoopStatus
}

export interface AutoscalerHealthDocument {
  readonly status: HealthStatus
  readonly components: Record<string, HealthComponent>
  readonly groups: readonly string[]
}

/**
 * Spring Boot's health document for the autoscaler. A standby is UP: it is ready to take over, which is its job.
 * `redisCluster` is DOWN while the cluster cannot be measured or is not `cluster_state:ok`, and takes the whole
 * document DOWN (readiness too), since nothing can be decided then; liveness stays UP, as a restart would not help.
 */
export function autoscalerHealth (status: LoopStatus): AutoscalerHealthDocument {
  const { cluster } = status
  const clusterUp = status.lastError === null && cluster !== null && cluster.state === 'ok'
  const redisCluster: HealthComponent = {
    status: clusterUp ? 'UP' : 'DOWN',
    details: {
      ...(cluster === null ? {} : { state: cluster.state, masters: cluster.masters, openSlots: cluster.openSlots }),
      ...(status.lastError === null ? {} : { error: status.lastError }),
      ...(cluster === null && status.lastError === null ? { error: 'not measured yet' } : {})
    }
  }
  const autoscaler: HealthComponent = {
    status: 'UP',
    details: {
      mode: status.mode,
      role: status.role,
      leader: status.leader,
      lastDecision: status.lastDecision === null ? null : { action: status.lastDecision.action, reason: status.lastDecision.reason, at: new Date(status.lastDecision.atMs).toISOString() },
      operation: status.operation
    }
  }
  const overall: HealthStatus = clusterUp ? 'UP' : 'DOWN'
  return {
    status: overall,
    components: Object.fromEntries(Object.entries({
      autoscaler,
      livenessState: { status: 'UP' },
      ping: { status: 'UP' },
      readinessState: { status: overall },
      redisCluster
    }).sort(([a], [b]) => compareNames(a, b))),
    groups: ['liveness', 'readiness']
  }
}

/** Spring Boot answers 503 for DOWN. */
const statusCode = (status: string): number => (status === 'DOWN' ? 503 : 200)

/** Registers /actuator, /actuator/prometheus, /actuator/health and /actuator/health/{component or group}. */
export async function autoscalerActuatorPlugin (app: FastifyInstance, options: AutoscalerActuatorOptions): Promise<void> {
  const { metrics, status } = options
  app.get(ACTUATOR_PREFIX, async (request) => {
    const base = `${request.protocol}://${request.host}${ACTUATOR_PREFIX}`
    const link = (path: string): { href: string, templated: boolean } => ({ href: `${base}${path}`, templated: path.includes('{') })
    return { _links: { self: link(''), health: link('/health'), 'health-path': link('/health/{*path}'), prometheus: link('/prometheus') } }
  })
  app.get(`${ACTUATOR_PREFIX}/prometheus`, async (request, reply) => {
    const openMetrics = acceptsOpenMetrics(request.headers.accept)
    const text = await metrics.metrics(openMetrics)
    return await reply.type(metrics.contentType(openMetrics)).send(text)
  })
  app.get(`${ACTUATOR_PREFIX}/health`, async (_request, reply) => {
    const health = autoscalerHealth(status())
    return await reply.code(statusCode(health.status)).send(health)
  })
  app.get<{ Params: { component: string } }>(`${ACTUATOR_PREFIX}/health/:component`, async (request, reply) => {
    const health = autoscalerHealth(status())
    const { component } = request.params
    const answer = component === 'liveness' ? health.components.livenessState : component === 'readiness' ? health.components.readinessState : health.components[component]
    if (answer === undefined) throw gatewayError('BW_ERR_ACTUATOR_NOT_FOUND', `no health component or group named ${component}`)
    return await reply.code(statusCode(answer.status)).send(answer)
  })
}
