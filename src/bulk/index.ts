// The bulk feature: the write coalescer that gathers single writes into batches.
export * from './coalescer.js'
