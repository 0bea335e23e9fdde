// This gateway instance's name: an async bulk route's consumer in its group, the autoscaler's lease holder.
import { hostname } from 'node:os'
import { INSTANCE_ID_ENV } from './schema.js'

/** BREAKWATER_INSTANCE_ID when set (a pod name survives restarts), else the host name. */
export function instanceIdFrom (env: NodeJS.ProcessEnv): string {
  const id = env[INSTANCE_ID_ENV]
  return id !== undefined && id !== '' ? id : hostname()
}
