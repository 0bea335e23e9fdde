// Topic<T>: listeners in subscription order, removable, and one that throws never fails the publisher or the others.
import t from 'tap'
import { Topic } from '../../../src/core/index.js'

t.test('publish hands the event to every listener in the order they subscribed; unsubscribe removes one', async (t) => {
  const topic = new Topic<number>('test.numbers')
  const heard: string[] = []
  t.equal(topic.hasSubscribers, false)
  const offA = topic.subscribe((n) => heard.push(`a${n}`))
  topic.subscribe((n) => heard.push(`b${n}`))
  t.equal(topic.hasSubscribers, true)
  topic.publish(1)
  offA()
  topic.publish(2)
  t.same(heard, ['a1', 'b1', 'b2'])
})

t.test('a listener that throws: the publisher and the later listeners go on, the error is rethrown on its own tick', async (t) => {
  const topic = new Topic<string>('test.throwing')
  const heard: string[] = []
  const boom = new Error('listener bug')
  topic.subscribe(() => { throw boom })
  topic.subscribe((event) => heard.push(event))
  const deferred: Array<() => void> = []
  const nextTick = process.nextTick
  // Captured rather than run: run, the rethrow would end this test process as any uncaught error does.
  process.nextTick = ((fn: () => void) => { deferred.push(fn) }) as typeof process.nextTick
  try {
    t.doesNotThrow(() => { topic.publish('e') })
  } finally {
    process.nextTick = nextTick
  }
  t.same(heard, ['e'])
  t.equal(deferred.length, 1)
  t.throws(() => { (deferred[0] as () => void)() }, boom)
})
