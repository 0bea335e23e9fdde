// The bulk feature: item parsing, the coalescer and bulk writer (one batch, one upstream request), and async mode's queues and sender.
export * from './items.js'
export * from './bulk-writer.js'
export * from './coalescer.js'
export * from './queue.js'
export * from './memory-queue.js'
export * from './stream-queue.js'
export * from './async-sender.js'
