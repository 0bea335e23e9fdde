// The bulk feature: the write coalescer that gathers single writes into batches, and the writer that sends each batch.
export * from './bulk-writer.js'
export * from './coalescer.js'
