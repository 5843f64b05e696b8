/** Exports begun ahead of their turn: the byte budget, taking, dropping and stopping them. */
import {Readable} from 'node:stream'
import {describe, expect, it} from '@jest/globals'
import type {StreamedCommand} from '../../src/exec/runner.js'
import {ReadAhead} from '../../src/system/docker-images.js'

/** A stand-in exporter that records which exports it began and which were killed. */
function exporter(): {
  begun: string[]
  killed: string[]
  base: (id: string) => Promise<StreamedCommand>
} {
  const begun: string[] = []
  const killed: string[] = []
  const base = (id: string): Promise<StreamedCommand> => {
    begun.push(id)
    return Promise.resolve({
      stdout: Readable.from([]),
      done: Promise.resolve({exitCode: 0, stdout: '', stderr: ''}),
      kill: () => killed.push(id)
    })
  }
  return {begun, killed, base}
}

const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

describe('exports begun ahead', () => {
  it('begins no more bytes than its budget holds untaken, and frees them when one is taken', async () => {
    const e = exporter()
    const ahead = new ReadAhead(e.base, 100)
    ahead.start('a', 60)
    ahead.start('b', 60) // 120 > 100: not begun
    ahead.start('a', 60) // already begun
    expect(e.begun).toEqual(['a'])
    await ahead.exporter('a')
    ahead.start('b', 60)
    expect(e.begun).toEqual(['a', 'b'])
    // Taken ahead or not, a take always gives an export; an image not begun ahead is begun now.
    await ahead.exporter('c')
    expect(e.begun).toEqual(['a', 'b', 'c'])
    ahead.start('d', 101) // larger than the whole budget: never ahead
    expect(e.begun).toEqual(['a', 'b', 'c'])
  })

  it('kills an export nobody took when it is dropped, and frees its bytes; a taken one is left alone', async () => {
    const e = exporter()
    const ahead = new ReadAhead(e.base, 100)
    ahead.start('a', 80)
    ahead.drop('a')
    await settle()
    expect(e.killed).toEqual(['a'])
    ahead.start('b', 80)
    await ahead.exporter('b')
    ahead.drop('b')
    await settle()
    expect(e.killed).toEqual(['a'])
    expect(e.begun).toEqual(['a', 'b'])
  })

  it('stops every export left untaken at the end', async () => {
    const e = exporter()
    const ahead = new ReadAhead(e.base)
    ahead.start('a', 1)
    ahead.start('b', 1)
    await ahead.exporter('a')
    await ahead.stop()
    expect(e.killed).toEqual(['b'])
  })
})
