// The origin: Debian's nginx, one worker, `return 200` with a fixed body, its config, pid, logs and temp paths under the run's temp dir.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { childPids } from './cpu.js'
import { freePort, waitForHttp } from './net.js'
import { LOAD_CPU, spawnPinned } from './processes.js'

/**
 * @typedef {object} Origin
 * @property {string} url  `http://127.0.0.1:PORT`, no trailing slash
 * @property {number} port
 * @property {number} pid  the master's
 * @property {number} workerPid  the one worker, which does all the work
 * @property {number} bodyBytes
 * @property {() => Promise<void>} stop
 */

/**
 * Starts nginx on a free loopback port, pinned to the load CPU. It never touches a system nginx: `-p` and `-c` point
 * at the temp dir, and `-e` keeps even its startup errors out of /var/log/nginx.
 * @param {object} options
 * @param {string} options.dir  the run's temp dir
 * @param {string} options.nginx  path of the nginx binary
 * @param {number} [options.bodyBytes]  size of the fixed body; 1 KiB by default
 * @param {Record<string, string>} [options.headers]  response headers to add, e.g. Cache-Control for cache scenarios
 * @param {number} [options.cpu]
 * @returns {Promise<Origin>}
 */
export async function startNginx ({ dir, nginx, bodyBytes = 1024, headers = {}, cpu = LOAD_CPU }) {
  const root = join(dir, 'nginx')
  mkdirSync(join(root, 'temp'), { recursive: true })
  const port = await freePort()
  // Letters only, so the body needs no escaping in the config.
  const body = 'breakwater'.repeat(Math.ceil(bodyBytes / 10)).slice(0, bodyBytes)
  const addHeaders = Object.entries(headers).map(([name, value]) => `      add_header ${name} "${value}" always;`).join('\n')
  const temp = (/** @type {string} */ name) => join(root, 'temp', name)
  const config = `# Written by bench/lib/nginx.js for one bench run.
daemon off;
master_process on;
worker_processes 1;
pid ${join(root, 'nginx.pid')};
error_log ${join(root, 'error.log')} warn;
events {
  worker_connections 4096;
}
http {
  access_log off;
  client_body_temp_path ${temp('client_body')};
  proxy_temp_path ${temp('proxy')};
  fastcgi_temp_path ${temp('fastcgi')};
  uwsgi_temp_path ${temp('uwsgi')};
  scgi_temp_path ${temp('scgi')};
  # nginx closes a keep-alive connection after 1000 requests by default: the proxies under test would reconnect
  # every few hundred milliseconds, and measure that.
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:${port};
    location / {
      default_type text/plain;
${addHeaders}
      return 200 "${body}";
    }
  }
}
`
  const configFile = join(root, 'nginx.conf')
  writeFileSync(configFile, config)
  const proc = spawnPinned('nginx', cpu, nginx, ['-p', root, '-c', configFile, '-e', join(root, 'error.log')], {
    logFile: join(root, 'stderr.log'),
    stdout: 'log'
  })
  const url = `http://127.0.0.1:${port}`
  try {
    await waitForHttp(`${url}/`, { proc })
    const workerPid = await onlyChild(proc.pid)
    return { url, port, pid: proc.pid, workerPid, bodyBytes, stop: () => proc.stop() }
  } catch (err) {
    await proc.stop()
    throw err
  }
}

/** nginx's single worker; it answered already, so it exists, but the lookup is bounded anyway. */
async function onlyChild (/** @type {number} */ pid) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const children = childPids(pid)
    if (children.length === 1) return /** @type {number} */ (children[0])
    await sleep(20)
  }
  throw new Error(`nginx (pid ${pid}) should have exactly one worker process`)
}
