export * from './auth.js'
export * from './health.js'
export * from './plugin.js'
export * from './types.js'
