export * from './errors.js'
export * from './problem.js'
