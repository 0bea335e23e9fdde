export * from './exchange.js'
export * from './headers.js'
export * from './route-forwarder.js'
export * from './upstream-errors.js'
