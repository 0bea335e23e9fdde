export * from './access-log.js'
export * from './build-server.js'
export * from './http-server.js'
export * from './request-id.js'
