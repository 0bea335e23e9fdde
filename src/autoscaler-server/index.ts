export * from './build-autoscaler.js'
