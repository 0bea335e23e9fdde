export * from './definitions.js'
export * from './registry.js'
