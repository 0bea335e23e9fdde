// Measuring: INFO parsed as Redis 7 writes it (captured from a redis-server in cluster mode, and read live), CPU and memory percentages.
import t from 'tap'
import { cpuPercent, InfoParseError, loadOf, memoryPercent, parseInfoSections, sampleFromInfo, type NodeSample } from '../../../src/autoscaler/index.js'
import { startRedis } from '../../helpers/redis.js'

/** `INFO server`, `INFO cpu` and `INFO memory` of redis-server 7.0.15 (--cluster-enabled yes), as sent: CRLF line ends. */
const CAPTURED_INFO = [
  '# Server',
  'redis_version:7.0.15',
  'redis_git_sha1:00000000',
  'redis_git_dirty:0',
  'redis_build_id:ae4d7c971a948f0',
  'redis_mode:cluster',
  'os:Linux 6.18.44-fc-v657 x86_64',
  'arch_bits:64',
  'monotonic_clock:POSIX clock_gettime',
  'multiplexing_api:epoll',
  'atomicvar_api:c11-builtin',
  'gcc_version:12.2.0',
  'process_id:28709',
  'process_supervised:no',
  'run_id:142845f7955c27cffc27d7e34a90fbab285d9f26',
  'tcp_port:47733',
  'server_time_usec:1796040347586122',
  'uptime_in_seconds:0',
  'uptime_in_days:0',
  'hz:10',
  'configured_hz:10',
  'lru_clock:878235',
  'executable:/tmp/redis-server',
  'config_file:',
  'io_threads_active:0',
  '',
  '# CPU',
  'used_cpu_sys:0.000000',
  'used_cpu_user:0.008868',
  'used_cpu_sys_children:0.000000',
  'used_cpu_user_children:0.000000',
  'used_cpu_sys_main_thread:0.000000',
  'used_cpu_user_main_thread:0.008738',
  '',
  '# Memory',
  'used_memory:1688040',
  'used_memory_human:1.61M',
  'used_memory_rss:12652544',
  'used_memory_rss_human:12.07M',
  'used_memory_peak:1688040',
  'used_memory_peak_human:1.61M',
  'used_memory_peak_perc:100.01%',
  'used_memory_overhead:1600392',
  'used_memory_startup:1600192',
  'used_memory_dataset:87648',
  'used_memory_dataset_perc:99.77%',
  'allocator_allocated:2411744',
  'allocator_active:2555904',
  'allocator_resident:5226496',
  'total_system_memory:25276510208',
  'total_system_memory_human:23.54G',
  'used_memory_lua:32768',
  'used_memory_vm_eval:32768',
  'used_memory_lua_human:32.00K',
  'used_memory_scripts_eval:0',
  'number_of_cached_scripts:0',
  'number_of_functions:0',
  'number_of_libraries:0',
  'used_memory_vm_functions:33792',
  'used_memory_vm_total:66560',
  'used_memory_vm_total_human:65.00K',
  'used_memory_functions:200',
  'used_memory_scripts:200',
  'used_memory_scripts_human:200B',
  'maxmemory:0',
  'maxmemory_human:0B',
  'maxmemory_policy:noeviction',
  'allocator_frag_ratio:1.06',
  'allocator_frag_bytes:144160',
  'allocator_rss_ratio:2.04',
  'allocator_rss_bytes:2670592',
  'rss_overhead_ratio:2.42',
  'rss_overhead_bytes:7426048',
  'mem_fragmentation_ratio:7.91',
  'mem_fragmentation_bytes:11052208',
  'mem_not_counted_for_evict:0',
  'mem_replication_backlog:0',
  'mem_total_replication_buffers:0',
  'mem_clients_slaves:0',
  'mem_clients_normal:0',
  'mem_cluster_links:0',
  'mem_aof_buffer:0',
  'mem_allocator:jemalloc-5.3.0',
  'active_defrag_running:0',
  'lazyfree_pending_objects:0',
  'lazyfreed_objects:0'
].join('\r\n')

const sample = (fields: Partial<NodeSample> = {}): NodeSample => ({
  node: '127.0.0.1:7000',
  atMs: 0,
  cpuSeconds: 10,
  usedMemory: 1_000,
  maxMemory: 0,
  totalSystemMemory: 10_000,
  runId: 'a'.repeat(40),
  uptimeSeconds: 100,
  ...fields
})

t.test('INFO text: sections by lower-cased name, fields by name, CRLF and colons in values kept', async (t) => {
  const sections = parseInfoSections(CAPTURED_INFO)
  t.same([...sections.keys()], ['', 'server', 'cpu', 'memory'])
  t.equal(sections.get('server')?.get('run_id'), '142845f7955c27cffc27d7e34a90fbab285d9f26')
  t.equal(sections.get('server')?.get('executable'), '/tmp/redis-server')
  t.equal(sections.get('cpu')?.get('used_cpu_user'), '0.008868', 'no CR left at the end of a value')
  t.equal(sections.get('memory')?.get('maxmemory_policy'), 'noeviction')
  const ipv6 = parseInfoSections('cluster_state:ok\nmaster_host:::1\n# Replication\nrole:master\n')
  t.equal(ipv6.get('')?.get('cluster_state'), 'ok', 'CLUSTER INFO has no section header: its fields go in ""')
  t.equal(ipv6.get('')?.get('master_host'), '::1', 'only the first colon separates')
  t.equal(ipv6.get('replication')?.get('role'), 'master')
  t.same([...parseInfoSections('').get('')?.keys() ?? []], [], 'empty text: one empty section')
})

t.test('a sample from captured INFO: CPU seconds are sys + user; memory, limits, run id and uptime as numbers', async (t) => {
  t.same(sampleFromInfo('127.0.0.1:47733', 1234, CAPTURED_INFO), {
    node: '127.0.0.1:47733',
    atMs: 1234,
    cpuSeconds: 0.008868,
    usedMemory: 1_688_040,
    maxMemory: 0,
    totalSystemMemory: 25_276_510_208,
    runId: '142845f7955c27cffc27d7e34a90fbab285d9f26',
    uptimeSeconds: 0
  })
})

t.test('INFO without a needed field, or with a non-number, is an InfoParseError naming the field', async (t) => {
  const without = (name: string): string => CAPTURED_INFO.split('\r\n').filter((line) => !line.startsWith(`${name}:`)).join('\r\n')
  const cases: Array<[text: string, message: string]> = [
    [without('used_cpu_sys'), 'INFO has no used_cpu_sys in # cpu (ask for INFO server cpu memory, or plain INFO)'],
    [without('maxmemory'), 'INFO has no maxmemory in # memory (ask for INFO server cpu memory, or plain INFO)'],
    [without('run_id'), 'INFO has no run_id in # server (ask for INFO server cpu memory, or plain INFO)'],
    [CAPTURED_INFO.replace('used_memory:1688040', 'used_memory:lots'), 'INFO used_memory is not a number >= 0: "lots"'],
    [CAPTURED_INFO.replace('used_memory:1688040', 'used_memory:'), 'INFO used_memory is not a number >= 0: ""'],
    [CAPTURED_INFO.replace('uptime_in_seconds:0', 'uptime_in_seconds:-1'), 'INFO uptime_in_seconds is not a number >= 0: "-1"'],
    ['# Memory\r\nused_memory:1\r\n', 'INFO has no used_cpu_sys in # cpu (ask for INFO server cpu memory, or plain INFO)']
  ]
  for (const [text, message] of cases) {
    t.throws(() => sampleFromInfo('n:1', 0, text), new InfoParseError(message), message)
  }
  t.equal(new InfoParseError('x').name, 'InfoParseError')
})

t.test('CPU %: delta of CPU seconds over delta of wall time', async (t) => {
  const before = sample({ cpuSeconds: 10 })
  t.equal(cpuPercent(before, sample({ atMs: 15_000, cpuSeconds: 13 }), 15_000), 20, '3 CPU seconds in 15 s')
  t.equal(cpuPercent(before, sample({ cpuSeconds: 10 }), 1000), 0, 'idle')
  t.equal(cpuPercent(before, sample({ cpuSeconds: 12.5 }), 1000), 250, 'io-threads can use more than one core: not capped')
})

t.test('CPU % is unknown (null), never negative, across a restart, for another node, or without elapsed time', async (t) => {
  const before = sample({ cpuSeconds: 10, uptimeSeconds: 100 })
  t.equal(cpuPercent(before, sample({ cpuSeconds: 0.5, runId: 'b'.repeat(40), uptimeSeconds: 3 }), 15_000), null, 'new run_id')
  t.equal(cpuPercent(before, sample({ cpuSeconds: 11, runId: 'b'.repeat(40) }), 15_000), null, 'new run_id even when counters grew')
  t.equal(cpuPercent(before, sample({ cpuSeconds: 9 }), 15_000), null, 'counters went down')
  t.equal(cpuPercent(before, sample({ cpuSeconds: 11, uptimeSeconds: 5 }), 15_000), null, 'uptime went down')
  t.equal(cpuPercent(before, sample({ node: '127.0.0.1:7001', cpuSeconds: 11 }), 15_000), null, 'another node')
  t.equal(cpuPercent(before, sample({ cpuSeconds: 11 }), 0), null, 'no wall time')
  t.equal(cpuPercent(before, sample({ cpuSeconds: 11 }), -5), null, 'a clock that went back')
  t.equal(cpuPercent(before, sample({ cpuSeconds: 11 }), Number.NaN), null)
})

t.test('memory %: over maxmemory when set, else over total_system_memory, else unknown', async (t) => {
  t.equal(memoryPercent(sample({ usedMemory: 750, maxMemory: 1_000 })), 75)
  t.equal(memoryPercent(sample({ usedMemory: 750, maxMemory: 0, totalSystemMemory: 3_000 })), 25)
  t.equal(memoryPercent(sample({ usedMemory: 750, maxMemory: 0, totalSystemMemory: 0 })), null)
  t.equal(memoryPercent(sample({ usedMemory: 1_500, maxMemory: 1_000 })), 150, 'over the limit (noeviction and a big write) is reported as it is')
  t.equal(memoryPercent(sampleFromInfo('n:1', 0, CAPTURED_INFO)), 1_688_040 / 25_276_510_208 * 100)
})

t.test('one interval\'s load: CPU since the previous sample (none for the first), memory of the current one', async (t) => {
  const first = sample({ atMs: 1_000, cpuSeconds: 10, usedMemory: 500, maxMemory: 1_000 })
  t.same(loadOf(undefined, first), { node: '127.0.0.1:7000', atMs: 1_000, cpu: null, memory: 50 })
  const second = sample({ atMs: 16_000, cpuSeconds: 11.5, usedMemory: 600, maxMemory: 1_000 })
  t.same(loadOf(first, second), { node: '127.0.0.1:7000', atMs: 16_000, cpu: 10, memory: 60 })
  t.same(loadOf(first, { ...second, runId: 'c'.repeat(40) }), { node: '127.0.0.1:7000', atMs: 16_000, cpu: null, memory: 60 }, 'a restart: CPU unknown, memory still read')
})

t.test('a live redis-server: INFO parses, CPU grows with work, memory follows CONFIG SET maxmemory', async (t) => {
  const redis = await startRedis(t)
  const node = `127.0.0.1:${redis.port}`
  const first = sampleFromInfo(node, 0, await redis.cli('info'))
  t.match(first.runId, /^[0-9a-f]{40}$/)
  t.ok(first.totalSystemMemory > 0, 'Linux reports the host RAM')
  t.equal(first.maxMemory, 0)
  t.equal(memoryPercent(first), first.usedMemory / first.totalSystemMemory * 100)

  await redis.cli('eval', 'for i = 1, 200000 do redis.call("set", "k" .. (i % 100), i) end', '0')
  await redis.cli('config', 'set', 'maxmemory', '100mb')
  const second = sampleFromInfo(node, 1, await redis.cli('info', 'everything'))
  t.equal(second.runId, first.runId)
  t.ok(second.cpuSeconds > first.cpuSeconds, `CPU seconds grew: ${first.cpuSeconds} -> ${second.cpuSeconds}`)
  t.equal(second.maxMemory, 100 * 1024 * 1024)
  t.equal(memoryPercent(second), second.usedMemory / (100 * 1024 * 1024) * 100)
  const cpu = cpuPercent(first, second, 1000)
  t.ok(cpu !== null && cpu > 0, `CPU % over the work: ${String(cpu)}`)

  await redis.stop()
  await redis.restart()
  const restarted = sampleFromInfo(node, 2, await redis.cli('info'))
  t.not(restarted.runId, second.runId, 'a restart gets a new run id')
  t.equal(cpuPercent(second, restarted, 1000), null)
})
