import {describe, expect, it} from '@jest/globals'
import {workerPool} from '../../src/phases/push/apply.js'
import type {PushResult} from '../../src/phases/push/push-result.js'

const result = (n: number): PushResult => ({
  source: `app${n}`,
  target: `localhost:5000/app${n}:1`,
  status: 'pushed',
  digest: `sha256:${String(n).repeat(64)}`,
  size: 1,
  attempts: 1
})

describe('the push worker pool', () => {
  it('tells of as many images ahead as there are workers, each before its worker takes it', async () => {
    const events: string[] = []
    const results = await workerPool(2)(
      [1, 2, 3, 4, 5],
      async n => {
        events.push(`take ${n}`)
        await new Promise(r => setTimeout(r, 5))
        return [result(n)]
      },
      n => events.push(`ahead ${n}`)
    )
    expect(results.map(r => r.source).sort()).toEqual(['app1', 'app2', 'app3', 'app4', 'app5'])
    // Both workers take their first image at once: the two after them are already begun.
    expect(events.slice(0, 5)).toEqual(['ahead 2', 'ahead 3', 'take 1', 'ahead 3', 'ahead 4'])
    for (const n of [2, 3, 4, 5]) {
      expect(events.indexOf(`ahead ${n}`)).toBeLessThan(events.indexOf(`take ${n}`))
    }
  })

  it('runs one at a time with one worker, telling of the next', async () => {
    const events: string[] = []
    await workerPool(1)(
      [1, 2, 3],
      async n => {
        events.push(`take ${n}`)
        return Promise.resolve([result(n)])
      },
      n => events.push(`ahead ${n}`)
    )
    expect(events).toEqual(['ahead 2', 'take 1', 'ahead 3', 'take 2', 'take 3'])
  })
})
