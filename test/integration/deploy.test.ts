// The deployment files: docker-compose.yml as Debian's docker-compose reads it and against the repository, the Dockerfile,
// and deploy/k8s/ for names, ports and config that agree between its objects. No Docker engine or cluster is needed.
import { execFile, type ExecFileException } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import t, { type Test } from 'tap'
import { parse, parseAllDocuments } from 'yaml'
import { parseConfig, type GatewayConfig } from '../../src/config/index.js'
import { DEMO_CATALOG_PORT, DEMO_ECHO_PORT } from '../../src/demo/upstreams.js'
import { REPO_ROOT } from '../helpers/cli.js'

/** `docker-compose config` reads files only; past this it hangs on something else (a Docker socket, a prompt). */
const COMPOSE_TIMEOUT_MS = 60_000
const K8S_DIR = join(REPO_ROOT, 'deploy', 'k8s')
/** The config files that compose and Kubernetes mount hold no secrets: their ${VAR:-default}s load with an empty environment. */
const NO_ENV = {}

interface ComposeVolume { type: string, source: string, target: string }
interface ComposeService {
  build?: string | { context: string }
  image?: string
  command?: string | string[]
  volumes?: Array<string | ComposeVolume>
  depends_on?: string[] | Record<string, { condition: string }>
  ports?: string[]
}
interface ComposeFile {
  services: Record<string, ComposeService>
  volumes?: Record<string, unknown>
}

interface Metadata { name: string, labels?: Record<string, string>, annotations?: Record<string, string> }
interface Probe { httpGet?: { path: string, port: string | number } }
interface Container {
  name: string
  image: string
  command?: string[]
  args?: string[]
  env?: Array<{ name: string, valueFrom?: { fieldRef?: { fieldPath: string } } }>
  ports?: Array<{ name?: string, containerPort: number }>
  livenessProbe?: Probe
  readinessProbe?: Probe
  resources?: { requests?: Record<string, string>, limits?: Record<string, string> }
  securityContext?: Record<string, unknown>
  volumeMounts?: Array<{ name: string, mountPath: string }>
}
interface PodTemplate {
  metadata: Metadata
  spec: {
    containers: Container[]
    volumes?: Array<{ name: string, configMap?: { name: string } }>
    securityContext?: Record<string, unknown>
    terminationGracePeriodSeconds?: number
  }
}
interface K8sObject { apiVersion: string, kind: string, metadata: Metadata, spec?: unknown, data?: Record<string, string> }
interface Workload { replicas: number, selector: { matchLabels: Record<string, string> }, template: PodTemplate }
interface StatefulSet extends Workload { serviceName: string }
interface Service { clusterIP?: string, selector: Record<string, string>, ports: Array<{ name?: string, port: number, targetPort?: string | number }> }
interface Job { template: PodTemplate }
interface PodDisruptionBudget { minAvailable?: number | string, maxUnavailable?: number | string, selector: { matchLabels: Record<string, string> } }

interface Run { code: number | null, stdout: string, stderr: string, error: ExecFileException | null }

async function dockerCompose (args: readonly string[]): Promise<Run> {
  return await new Promise((resolve) => {
    execFile('docker-compose', [...args], { cwd: REPO_ROOT, timeout: COMPOSE_TIMEOUT_MS }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr, error })
    })
  })
}

async function composeFile (): Promise<ComposeFile> {
  return parse(await readFile(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as ComposeFile
}

/** A command as its words: compose takes a string (split like a shell would, for these simple ones) or a list. */
function words (command: string | string[] | undefined): string[] {
  if (command === undefined) return []
  return typeof command === 'string' ? command.trim().split(/\s+/) : command
}

/** The value after `--flag` in a command line. */
function flag (argv: readonly string[], name: string): string | undefined {
  const at = argv.indexOf(name)
  return at === -1 ? undefined : argv[at + 1]
}

function volumeOf (entry: string | ComposeVolume): ComposeVolume {
  if (typeof entry !== 'string') return entry
  const [source = '', target = ''] = entry.split(':')
  return { type: /^[./~]/.test(source) ? 'bind' : 'volume', source, target }
}

function dependencies (service: ComposeService): Record<string, string> {
  const dependsOn = service.depends_on ?? []
  if (Array.isArray(dependsOn)) return Object.fromEntries(dependsOn.map((name) => [name, 'service_started']))
  return Object.fromEntries(Object.entries(dependsOn).map(([name, { condition }]) => [name, condition]))
}

/** The gateway config a compose service mounts at the path its `--config` names, loaded by the gateway's own loader. */
async function mountedConfig (service: ComposeService): Promise<{ file: string, config: GatewayConfig }> {
  const path = flag(words(service.command), '--config')
  const mount = (service.volumes ?? []).map(volumeOf).find((volume) => volume.target === path)
  if (path === undefined || mount === undefined) throw new Error(`no volume is mounted at the --config path ${String(path)}`)
  const file = resolve(REPO_ROOT, mount.source)
  return { file, config: parseConfig(await readFile(file, 'utf8'), file, NO_ENV) }
}

/** The jobs of config/prometheus.yml that scrape `target` (host:port). */
async function scrapeJobsOf (target: string): Promise<Array<{ job_name: string, metrics_path?: string }>> {
  const prometheus = parse(await readFile(join(REPO_ROOT, 'config', 'prometheus.yml'), 'utf8')) as {
    scrape_configs?: Array<{ job_name: string, metrics_path?: string, static_configs?: Array<{ targets: string[] }> }>
  }
  return (prometheus.scrape_configs ?? []).filter((job) => job.static_configs?.some(({ targets }) => targets.includes(target)))
}

t.test('docker-compose config accepts docker-compose.yml', async (t) => {
  const run = await dockerCompose(['-f', 'docker-compose.yml', 'config'])
  if (run.error?.code === 'ENOENT') {
    t.fail('docker-compose is not installed: install Debian\'s docker-compose package (apt-get install docker-compose)')
    return
  }
  t.equal(run.code, 0, `docker-compose config exits 0; stderr: ${run.stderr}`)
  t.notOk(run.error?.killed, `docker-compose config finished within ${COMPOSE_TIMEOUT_MS} ms`)
  if (run.code !== 0) return
  // What it prints is the file as Compose understood it: every service, and the conditions the gateway waits for.
  const normalized = parse(run.stdout) as ComposeFile
  const written = await composeFile()
  t.same(Object.keys(normalized.services).sort(), Object.keys(written.services).sort(), 'every service is understood')
  t.same(dependencies(normalized.services.gateway as ComposeService), dependencies(written.services.gateway as ComposeService),
    'the gateway waits for a healthy demo and a created cluster')
})

t.test('docker-compose.yml: every mounted path exists, every dependency is a service, every build has a Dockerfile', async (t) => {
  const compose = await composeFile()
  const services = Object.keys(compose.services)
  for (const [name, service] of Object.entries(compose.services)) {
    for (const volume of (service.volumes ?? []).map(volumeOf)) {
      if (volume.type === 'bind') t.ok(existsSync(resolve(REPO_ROOT, volume.source)), `${name}: ${volume.source} exists (mounted at ${volume.target})`)
      else t.ok(compose.volumes !== undefined && volume.source in compose.volumes, `${name}: the named volume ${volume.source} is declared`)
    }
    for (const dependency of Object.keys(dependencies(service))) {
      t.ok(services.includes(dependency), `${name} depends on ${dependency}, a service`)
    }
    if (service.build !== undefined) {
      const context = typeof service.build === 'string' ? service.build : service.build.context
      t.ok(existsSync(join(REPO_ROOT, context, 'Dockerfile')), `${name}: ${context} has a Dockerfile`)
    }
  }
  // A file mounted where none exists would become an empty directory in the container: these must be files.
  const files = ['gateway', 'prometheus'].flatMap((name) => (compose.services[name]?.volumes ?? []).map(volumeOf))
    .filter((volume) => volume.type === 'bind')
  t.ok(files.length >= 3, 'the gateway config, the Prometheus config and its rules are mounted')
  for (const volume of files) t.ok(statSync(resolve(REPO_ROOT, volume.source), { throwIfNoEntry: false })?.isFile(), `${volume.source} is a file`)
})

t.test('the compose gateway config loads and names the Cluster that compose defines', async (t) => {
  const compose = await composeFile()
  const gateway = compose.services.gateway as ComposeService
  const { config } = await mountedConfig(gateway)
  t.equal(config.server.host, '0.0.0.0', 'the gateway listens beyond its loopback')
  t.ok(gateway.ports?.some((port) => port.endsWith(`:${config.server.port}`)), `port ${config.server.port} is published`)

  const nodes = Object.entries(compose.services)
    .map(([name, service]) => ({ name, argv: words(service.command) }))
    .filter(({ argv }) => flag(argv, '--cluster-enabled') === 'yes')
  t.equal(nodes.length, 3, 'three Cluster nodes')
  t.same([...(config.redis?.cluster ?? [])].sort(), nodes.map(({ name, argv }) => `redis://${name}:${flag(argv, '--port') ?? 6379}`).sort(),
    'redis.cluster lists every node by its service name and port')
  for (const { name, argv } of nodes) {
    t.equal(flag(argv, '--cluster-announce-hostname'), name, `${name} announces its service name to clients`)
    t.equal(flag(argv, '--cluster-preferred-endpoint-type'), 'hostname', `${name} redirects clients by name`)
  }

  const init = compose.services['redis-cluster-init'] as ComposeService
  const script = words(init.command).join(' ')
  t.match(script, /redis-cli --cluster create .* --cluster-replicas 0 --cluster-yes/, 'the init service creates the Cluster')
  for (const { name } of nodes) {
    t.equal(dependencies(init)[name], 'service_healthy', `the init service waits for ${name} to answer`)
    t.match(script, new RegExp(`\\b${name}\\b`), `the init service joins ${name}`)
  }

  const services = Object.keys(compose.services)
  for (const route of config.routes) {
    for (const upstream of route.upstreams) {
      const { hostname, port } = new URL(upstream)
      t.ok(services.includes(hostname), `${route.id}: ${upstream} names a compose service`)
      if (hostname === 'demo') t.ok([DEMO_CATALOG_PORT, DEMO_ECHO_PORT].includes(Number(port)), `${route.id}: ${upstream} is a demo upstream's port`)
    }
  }
  t.ok(config.routes.some((route) => route.bulk?.mode === 'async'), 'an async bulk route feeds the Bulk dashboard')
})

t.test('the compose autoscaler runs `autoscale` on the gateway\'s cluster in recommend mode, scraped where it listens', async (t) => {
  const compose = await composeFile()
  const service = compose.services.autoscaler as ComposeService
  t.equal(words(service.command)[0], 'autoscale')
  const { config } = await mountedConfig(service)
  const gateway = await mountedConfig(compose.services.gateway as ComposeService)
  t.same(config.redis?.cluster, gateway.config.redis?.cluster, 'the cluster the gateway caches in')
  t.equal(config.autoscaler.mode, 'recommend', 'it changes nothing: the stack has no spare node')
  t.equal(dependencies(service)['redis-cluster-init'], 'service_completed_successfully', 'it starts once the cluster exists')
  const target = `autoscaler:${config.autoscaler.port}`
  const jobs = await scrapeJobsOf(target)
  t.equal(jobs.length, 1, `one scrape job targets ${target}`)
  t.equal(jobs[0]?.metrics_path, '/actuator/prometheus')
})

t.test('Prometheus scrapes the compose gateway where it listens; Grafana reads that Prometheus and the mounted dashboards', async (t) => {
  const compose = await composeFile()
  const { config } = await mountedConfig(compose.services.gateway as ComposeService)
  const target = `gateway:${config.server.port}`
  const jobs = await scrapeJobsOf(target)
  t.equal(jobs.length, 1, `one scrape job targets ${target}`)
  t.equal(jobs[0]?.metrics_path, '/actuator/prometheus', 'on the actuator\'s Prometheus endpoint')

  // Grafana's provisioning as the grafana service mounts it: its datasource is the prometheus service, its dashboard
  // provider reads where the repository's dashboards/ is mounted.
  const grafana = (compose.services.grafana?.volumes ?? []).map(volumeOf)
  const provisioning = grafana.find((volume) => volume.target === '/etc/grafana/provisioning')
  const dashboards = grafana.find((volume) => resolve(REPO_ROOT, volume.source) === join(REPO_ROOT, 'dashboards'))
  t.ok(provisioning !== undefined && dashboards !== undefined, 'provisioning and dashboards/ are mounted')
  const provisioned = async (kind: string): Promise<Record<string, unknown>> => {
    const dir = join(resolve(REPO_ROOT, provisioning?.source ?? ''), kind)
    const files = (await readdir(dir)).filter((name) => /\.ya?ml$/.test(name))
    t.equal(files.length, 1, `one ${kind} provisioning file`)
    return parse(await readFile(join(dir, files[0] ?? ''), 'utf8')) as Record<string, unknown>
  }
  const { datasources } = await provisioned('datasources') as { datasources: Array<{ type: string, url: string }> }
  const { hostname, port } = new URL(datasources.find(({ type }) => type === 'prometheus')?.url ?? 'http://none')
  t.equal(hostname, 'prometheus', 'Grafana\'s Prometheus datasource is the prometheus service')
  t.ok(compose.services.prometheus?.ports?.some((published) => published.endsWith(`:${port}`)), `which serves port ${port}`)
  const { providers } = await provisioned('dashboards') as { providers: Array<{ options: { path: string } }> }
  t.same(providers.map(({ options }) => options.path), [dashboards?.target], 'the dashboard provider reads the mounted dashboards/')
})

t.test('the Dockerfile builds in two stages and runs the gateway unprivileged, health-checked on its port', async (t) => {
  const dockerfile = await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8')
  const instructions = dockerfile.replace(/\\\n/g, ' ').split('\n').filter((line) => /^[A-Z]+ /.test(line))
  const stages = instructions.filter((line) => line.startsWith('FROM '))
  t.equal(stages.length, 2, 'a build stage and a runtime stage')
  const runtime = instructions.slice(instructions.indexOf(stages[1] as string))
  t.ok(runtime.includes('USER node'), 'the runtime stage runs as node')
  t.ok(runtime.some((line) => /npm ci --omit=dev --ignore-scripts/.test(line)), 'production dependencies only, without the tsc prepare script')
  t.ok(runtime.some((line) => line.startsWith('COPY --from=build /app/dist ')), 'dist/ comes from the build stage')
  t.ok(runtime.includes('EXPOSE 8080'), 'the default port is exposed')
  t.ok(runtime.some((line) => line.startsWith('HEALTHCHECK ') && line.includes('http://127.0.0.1:8080/actuator/health')), 'the health check asks /actuator/health')
  const cmd = JSON.parse(runtime.find((line) => line.startsWith('CMD '))?.slice(4) ?? '[]') as string[]
  const copied = runtime.find((line) => line.startsWith('COPY config/gateway.yaml '))?.split(' ')[2]
  t.equal(flag(cmd, '--config'), copied, 'the default command reads the config the image holds')
  // The image's default config is the shipped one: it must load, and listen on the port exposed and health-checked.
  const shipped = parseConfig(await readFile(join(REPO_ROOT, 'config', 'gateway.yaml'), 'utf8'), 'config/gateway.yaml', NO_ENV)
  t.equal(shipped.server.port, 8080, 'the shipped config listens on the port exposed')
})

/**
 * Every object in deploy/k8s/*.yaml (the production manifests), or in `dir` below it (deploy/k8s/demo/); fails the
 * test on a document that does not parse or lacks its identity.
 */
async function k8sObjects (t: Test, dir = K8S_DIR): Promise<K8sObject[]> {
  const files = (await readdir(dir)).filter((name) => name.endsWith('.yaml')).sort()
  const objects: K8sObject[] = []
  for (const name of files) {
    for (const document of parseAllDocuments(await readFile(join(dir, name), 'utf8'))) {
      t.same(document.errors.map(String), [], `${name} parses`)
      const object = document.toJS() as K8sObject
      t.ok(object.apiVersion !== undefined && object.kind !== undefined && object.metadata?.name !== undefined, `${name}: apiVersion, kind and name`)
      objects.push(object)
    }
  }
  return objects
}

function find<T> (objects: readonly K8sObject[], kind: string, name: string): K8sObject & { spec: T } {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name)
  if (found === undefined) throw new Error(`no ${kind} named ${name} in deploy/k8s`)
  return found as K8sObject & { spec: T }
}

/** Whether every label a selector asks for is on the pods. */
function selects (selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels?.[key] === value)
}

/** A Service or probe port (a number, or the name of a container port) as the container's port number. */
function containerPort (container: Container, port: string | number | undefined): number | undefined {
  if (typeof port === 'number') return container.ports?.some(({ containerPort }) => containerPort === port) === true ? port : undefined
  return container.ports?.find(({ name }) => name === port)?.containerPort
}

/** The ConfigMap key the gateway's `--config` path names, through the volume it is mounted from. */
function mountedConfigMapKey (objects: readonly K8sObject[], pod: PodTemplate, container: Container): { configMap: K8sObject, key: string } {
  const path = flag(container.args ?? [], '--config') ?? ''
  const mount = container.volumeMounts?.find(({ mountPath }) => path.startsWith(`${mountPath}/`))
  const name = pod.spec.volumes?.find((volume) => volume.name === mount?.name)?.configMap?.name
  if (mount === undefined || name === undefined) throw new Error(`the --config path ${path} is not in a mounted ConfigMap`)
  return { configMap: find<unknown>(objects, 'ConfigMap', name), key: path.slice(mount.mountPath.length + 1) }
}

interface Started { deployment: K8sObject & { spec: Workload }, container: Container, config: GatewayConfig }

/** A Deployment of the image, its container and the config it is started with, loaded by the gateway's own loader. */
function k8sDeployment (objects: readonly K8sObject[], name: string): Started {
  const deployment = find<Workload>(objects, 'Deployment', name)
  const container = deployment.spec.template.spec.containers[0] as Container
  const { configMap, key } = mountedConfigMapKey(objects, deployment.spec.template, container)
  const text = configMap.data?.[key]
  if (text === undefined) throw new Error(`ConfigMap ${configMap.metadata.name} has no key ${key}`)
  return { deployment, container, config: parseConfig(text, `ConfigMap/${configMap.metadata.name}:${key}`, NO_ENV) }
}

const k8sGateway = (objects: readonly K8sObject[]): Started => k8sDeployment(objects, 'breakwater')

t.test('deploy/k8s: the gateway Deployment, its Service and its ConfigMap agree', async (t) => {
  const objects = await k8sObjects(t)
  t.same(objects.map(({ kind, metadata }) => `${kind}/${metadata.name}`).sort(), [
    'ConfigMap/breakwater-config', 'Deployment/breakwater', 'Deployment/breakwater-autoscaler', 'Job/redis-cluster-create',
    'PodDisruptionBudget/breakwater', 'PodDisruptionBudget/redis-cluster', 'Service/breakwater', 'Service/redis-cluster',
    'StatefulSet/redis-cluster'
  ])
  const { deployment, container, config } = k8sGateway(objects)
  const pod = deployment.spec.template
  t.ok(selects(deployment.spec.selector.matchLabels, pod.metadata.labels), 'the Deployment selects its own pods')
  t.notOk(container.args?.includes('--demo'), 'production pods start no demo upstreams')

  const service = find<Service>(objects, 'Service', 'breakwater')
  t.ok(selects(service.spec.selector, pod.metadata.labels), 'the Service selects the Deployment\'s pods')
  const servicePort = service.spec.ports[0]
  const gatewayPort = containerPort(container, servicePort?.targetPort)
  t.not(gatewayPort, undefined, `the Service's targetPort ${String(servicePort?.targetPort)} is a container port`)

  t.equal(container.livenessProbe?.httpGet?.path, '/actuator/health/liveness', 'the liveness probe asks the liveness group')
  t.equal(containerPort(container, container.livenessProbe?.httpGet?.port), gatewayPort, 'liveness is probed on the gateway\'s port')
  t.equal(container.readinessProbe?.httpGet?.path, '/actuator/health/readiness', 'the readiness probe asks the readiness group')
  t.equal(containerPort(container, container.readinessProbe?.httpGet?.port), gatewayPort, 'readiness is probed on the gateway\'s port')
  t.same(pod.metadata.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(gatewayPort), 'prometheus.io/path': '/actuator/prometheus' },
    'Prometheus scrape annotations name the gateway\'s port and the actuator endpoint')

  // k8sGateway found the --config path as a key of the mounted ConfigMap, and loaded it as a gateway config.
  t.equal(flag(container.args ?? [], '--config'), '/etc/breakwater/gateway.yaml', 'the gateway reads the mounted config')
  t.equal(config.server.port, gatewayPort, 'the gateway listens on the container port')
  t.equal(config.management.port, null, 'the actuator (probes, scrapes) is on that port too')
})

t.test('deploy/k8s/demo: the demo upstreams run in pods of their own, behind the Service the example routes name', async (t) => {
  const objects = await k8sObjects(t)
  const demo = await k8sObjects(t, join(K8S_DIR, 'demo'))
  t.same(demo.map(({ kind, metadata }) => `${kind}/${metadata.name}`).sort(), ['Deployment/breakwater-demo', 'Service/breakwater-demo'])
  const gateway = k8sGateway(objects)
  const deployment = find<Workload>(demo, 'Deployment', 'breakwater-demo')
  const pod = deployment.spec.template
  const container = pod.spec.containers[0] as Container
  t.ok(selects(deployment.spec.selector.matchLabels, pod.metadata.labels), 'the Deployment selects its own pods')
  t.equal(container.image, gateway.container.image, 'from the gateway\'s image')
  t.match([...(container.command ?? []), ...(container.args ?? [])].join(' '), /startDemoUpstreams\('0\.0\.0\.0'\)/, 'it runs the demo upstreams, beyond its loopback')
  t.same(container.securityContext, gateway.container.securityContext, 'the container is as locked down as the gateway\'s')
  for (const service of objects.filter(({ kind }) => kind === 'Service') as Array<K8sObject & { spec: Service }>) {
    t.notOk(selects(service.spec.selector, pod.metadata.labels), `Service ${service.metadata.name} does not select the demo's pods`)
  }

  // Each example route reaches a demo upstream through the demo Service, on the port the demo listens on.
  const service = find<Service>(demo, 'Service', 'breakwater-demo')
  t.ok(selects(service.spec.selector, pod.metadata.labels), 'the demo Service selects the demo\'s pods')
  for (const route of gateway.config.routes) {
    for (const upstream of route.upstreams) {
      const { hostname, port } = new URL(upstream)
      t.equal(hostname, service.metadata.name, `${route.id}: ${upstream} names the demo Service`)
      const servicePort = service.spec.ports.find((candidate) => candidate.port === Number(port))
      const target = containerPort(container, servicePort?.targetPort)
      t.ok(target !== undefined && [DEMO_CATALOG_PORT, DEMO_ECHO_PORT].includes(target), `${route.id}: port ${port} leads to a demo upstream's port`)
    }
  }
})

/** A Kubernetes memory quantity (`512Mi`) or a Redis memory size (`384mb`: Redis counts mb in MiB) in bytes. */
function bytes (size: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|kb|mb|gb)?$/i.exec(size)
  if (match === null) throw new Error(`not a memory size: ${size}`)
  const units: Record<string, number> = { ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30, kb: 2 ** 10, mb: 2 ** 20, gb: 2 ** 30 }
  return Number(match[1]) * (units[(match[2] ?? '').toLowerCase()] ?? 1)
}

t.test('deploy/k8s: Redis evicts cache entries below its container limit, and never a queued bulk write', async (t) => {
  const objects = await k8sObjects(t)
  const redis = find<StatefulSet>(objects, 'StatefulSet', 'redis-cluster').spec.template.spec.containers[0] as Container
  const argv = redis.args ?? []
  const maxmemory = bytes(flag(argv, '--maxmemory') ?? '0')
  const limit = bytes(redis.resources?.limits?.memory ?? '0')
  t.ok(maxmemory > 0, 'maxmemory is set: without it Redis grows until the kernel kills it at the limit')
  t.ok(maxmemory <= limit * 0.8, `maxmemory (${maxmemory} B) leaves a fifth of the limit (${limit} B) to the AOF rewrite's fork and client buffers`)
  // The async bulk queues live in the same Cluster as the cache: their streams carry no TTL, the cache's keys all do.
  const { config } = k8sGateway(objects)
  t.ok(config.routes.some((route) => route.bulk?.mode === 'async'), 'an async bulk route queues in this Cluster')
  t.equal(flag(argv, '--maxmemory-policy'), 'volatile-lru', 'only keys with a TTL (the cache\'s) are evicted')
})

t.test('deploy/k8s: PodDisruptionBudgets let a drain take one gateway pod and one Redis pod at a time', async (t) => {
  const objects = await k8sObjects(t)
  const budgets: Array<[string, K8sObject & { spec: Workload }]> = [
    ['breakwater', find<Workload>(objects, 'Deployment', 'breakwater')],
    ['redis-cluster', find<Workload>(objects, 'StatefulSet', 'redis-cluster')]
  ]
  for (const [name, workload] of budgets) {
    const budget = find<PodDisruptionBudget>(objects, 'PodDisruptionBudget', name)
    t.equal(budget.apiVersion, 'policy/v1')
    t.ok(selects(budget.spec.selector.matchLabels, workload.spec.template.metadata.labels), `${name}: the budget selects the ${workload.kind}'s pods`)
    t.equal(budget.spec.maxUnavailable, 1, `${name}: one pod at a time`)
    t.ok(workload.spec.replicas > 1, `${name}: ${workload.spec.replicas} pods, so one is left serving`)
  }
})

t.test('deploy/k8s: the Redis Cluster StatefulSet, its headless Service, the create Job and the gateway config agree', async (t) => {
  const objects = await k8sObjects(t)
  const statefulSet = find<StatefulSet>(objects, 'StatefulSet', 'redis-cluster')
  const { replicas, serviceName, template } = statefulSet.spec
  const redis = template.spec.containers[0] as Container
  t.equal(redis.image, 'redis:7.0', 'the plan\'s image')
  t.equal(replicas, 5, 'three masters and two spares')
  t.ok(selects(statefulSet.spec.selector.matchLabels, template.metadata.labels), 'the StatefulSet selects its own pods')
  t.same(redis.resources, { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } }, 'the plan\'s requests and limits')
  const argv = redis.args ?? []
  const port = Number(flag(argv, '--port'))
  t.equal(port, 6379, 'Redis listens on 6379')
  t.ok(redis.ports?.some(({ containerPort }) => containerPort === port), 'and the container declares it')
  t.equal(flag(argv, '--cluster-enabled'), 'yes', 'in cluster mode')

  const headless = find<Service>(objects, 'Service', serviceName)
  t.equal(headless.spec.clusterIP, 'None', `the StatefulSet's service ${serviceName} is headless`)
  t.ok(selects(headless.spec.selector, template.metadata.labels), 'and selects its pods')
  t.ok(headless.spec.ports.some((servicePort) => servicePort.port === port && containerPort(redis, servicePort.targetPort ?? servicePort.port) === port),
    `and serves port ${port}`)

  // Each pod announces the name it has through the headless Service, and the gateway starts from exactly those names.
  t.equal(flag(argv, '--cluster-announce-hostname'), `$(POD_NAME).${serviceName}`, 'each node announces <pod>.<headless service>')
  t.equal(redis.env?.find(({ name }) => name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name', 'POD_NAME is the pod\'s name')
  const podNames = Array.from({ length: replicas }, (_, i) => `${statefulSet.metadata.name}-${i}.${serviceName}`)
  const { config } = k8sGateway(objects)
  // The first pods form the Cluster, the rest are the autoscaler's spares: one config names both, pod by pod.
  const masters = config.redis?.cluster?.length ?? 0
  t.equal(masters, 3, 'the Cluster starts with three masters')
  const url = (name: string): string => `redis://${name}:${port}`
  const members = podNames.slice(0, masters)
  const spares = podNames.slice(masters)
  t.same(config.redis?.cluster, members.map(url), 'redis.cluster names the first pods and the Redis port')
  t.same(config.autoscaler.spareNodes, spares.map(url), 'autoscaler.spareNodes names every other pod')
  t.equal(config.autoscaler.maxMasters, replicas, 'maxMasters is the StatefulSet\'s pods: the autoscaler never creates one')
  t.ok(config.autoscaler.minMasters <= masters, `minMasters (${config.autoscaler.minMasters}) allows the starting ${masters}`)

  const job = find<Job>(objects, 'Job', 'redis-cluster-create')
  const create = job.spec.template.spec.containers[0] as Container
  t.equal(create.image, redis.image, 'the Job\'s redis-cli is the Cluster\'s version')
  const script = [...(create.command ?? []), ...(create.args ?? [])].join(' ')
  t.match(script, /redis-cli --cluster create .* --cluster-replicas 0 --cluster-yes/, 'the Job creates the Cluster, without replicas')
  const named = (name: string): RegExp => new RegExp(`\\b${name.replace(/\./g, '\\.')}\\b`)
  for (const name of members) t.match(script, named(name), `the Job joins ${name}`)
  // A spare the Job joined would be a master holding slots from the start: nothing would be left to add.
  for (const name of spares) t.notMatch(script, named(name), `the Job leaves the spare ${name} out`)
})

t.test('deploy/k8s: the autoscaler Deployment runs the gateway\'s image and config, in recommend mode, apart from its traffic', async (t) => {
  const objects = await k8sObjects(t)
  const gateway = k8sGateway(objects)
  const { deployment, container, config } = k8sDeployment(objects, 'breakwater-autoscaler')
  const pod = deployment.spec.template
  t.ok(selects(deployment.spec.selector.matchLabels, pod.metadata.labels), 'the Deployment selects its own pods')
  t.equal(deployment.spec.replicas, 2, 'a leader and a standby')

  const args = container.args ?? []
  t.equal(args[0], 'autoscale', 'it runs breakwater autoscale')
  t.equal(container.image, gateway.container.image, 'from the gateway\'s image')
  const { configMap, key } = mountedConfigMapKey(objects, pod, container)
  const gatewayConfig = mountedConfigMapKey(objects, gateway.deployment.spec.template, gateway.container)
  t.same([configMap.metadata.name, key, flag(args, '--config')], [gatewayConfig.configMap.metadata.name, gatewayConfig.key, flag(gateway.container.args ?? [], '--config')],
    'it reads the gateway\'s config, from the same ConfigMap key at the same path')
  t.equal(config.autoscaler.mode, 'recommend', 'recommend mode: a fresh install changes nothing')
  t.not(config.redis?.cluster, undefined, 'the Cluster it manages is redis.cluster')
  t.equal(container.env?.find(({ name }) => name === 'BREAKWATER_INSTANCE_ID')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name',
    'each pod goes by its name (the lease holder)')

  // /actuator/health and /actuator/prometheus are on autoscaler.port, on server.host.
  const port = config.autoscaler.port
  t.equal(config.server.host, '0.0.0.0', 'it listens beyond its loopback')
  t.equal(containerPort(container, 'metrics'), port, `the container port metrics is autoscaler.port (${port})`)
  t.equal(container.livenessProbe?.httpGet?.path, '/actuator/health/liveness', 'the liveness probe asks the liveness group')
  t.equal(containerPort(container, container.livenessProbe?.httpGet?.port), port, 'on autoscaler.port')
  t.equal(container.readinessProbe?.httpGet?.path, '/actuator/health/readiness', 'the readiness probe asks the readiness group')
  t.equal(containerPort(container, container.readinessProbe?.httpGet?.port), port, 'on autoscaler.port')
  t.same(pod.metadata.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/actuator/prometheus' },
    'Prometheus scrape annotations name autoscaler.port and the actuator endpoint')

  t.same(pod.spec.securityContext, gateway.deployment.spec.template.spec.securityContext, 'the pod runs as the gateway\'s does')
  t.same(container.securityContext, gateway.container.securityContext, 'the container is as locked down as the gateway\'s')
  t.ok(container.resources?.requests?.cpu !== undefined && container.resources.requests.memory !== undefined, 'CPU and memory are requested')
  t.ok(container.resources?.limits?.cpu !== undefined && container.resources.limits.memory !== undefined, 'and limited')
  // On SIGTERM the leader finishes the key batch in flight before it releases its lease.
  const graceMs = (pod.spec.terminationGracePeriodSeconds ?? 30) * 1000
  t.ok(graceMs >= 60_000 && graceMs > config.autoscaler.migration.timeoutMs, `terminationGracePeriodSeconds (${graceMs / 1000}) outlasts a MIGRATE batch`)

  // Its pods answer no traffic: neither the gateway's Service nor its Deployment may take them for gateway pods.
  for (const service of objects.filter(({ kind }) => kind === 'Service') as Array<K8sObject & { spec: Service }>) {
    t.notOk(selects(service.spec.selector, pod.metadata.labels), `Service ${service.metadata.name} does not select the autoscaler's pods`)
  }
  t.notOk(selects(gateway.deployment.spec.selector.matchLabels, pod.metadata.labels), 'the gateway Deployment does not select them')
  t.notOk(selects(deployment.spec.selector.matchLabels, gateway.deployment.spec.template.metadata.labels), 'nor they the gateway\'s pods')
})
