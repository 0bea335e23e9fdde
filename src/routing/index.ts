export * from './path.js'
export * from './route-table.js'
