// The response cache: keys, the stored entry format, the RFC 9111 shared-cache policy and the stores under it.
export * from './key.js'
export * from './entry.js'
export * from './policy.js'
export * from './store.js'
export * from './memory-store.js'
export * from './redis-store.js'
export * from './tiered-store.js'
