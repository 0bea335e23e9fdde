// The resilience feature: per-route circuit breakers, their registry, and the retry policy.
export * from './types.js'
export * from './sliding-window.js'
export * from './event-ring.js'
export * from './circuit-breaker.js'
export * from './events.js'
export * from './registry.js'
export * from './retry.js'
