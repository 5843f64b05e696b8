import {execFileSync} from 'node:child_process'
import {mkdtempSync, writeFileSync, mkdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import * as path from 'node:path'
import {Readable} from 'node:stream'
import {describe, expect, it} from '@jest/globals'
import {
  padding,
  parsePaxRecords,
  parseTarHeader,
  withExtensions
} from '../../src/phases/push/tar.js'
import {pieces, tarEntries} from '../../src/phases/push/tar-stream.js'
import {header, tarArchive} from './save-archive.js'

/** The entries of an archive fed in chunks of `size` bytes, bodies read whole. */
async function read(archive: Buffer, size = 999): Promise<[string, string][]> {
  const chunks = Array.from({length: Math.ceil(archive.length / size)}, (_, i) =>
    archive.subarray(i * size, (i + 1) * size)
  )
  const out: [string, string][] = []
  for await (const e of tarEntries(Readable.from(chunks))) {
    const parts: Buffer[] = []
    for await (const p of e.body()) parts.push(p)
    out.push([e.name, Buffer.concat(parts).toString()])
  }
  return out
}

describe('tar headers', () => {
  it.each<[string, Buffer, {name: string; size: number; type: string}]>([
    ['a file', header('a/layer.tar', 1536), {name: 'a/layer.tar', size: 1536, type: '0'}],
    [
      'a PAX header',
      header('PaxHeaders.0/x', 30, 'x'),
      {name: 'PaxHeaders.0/x', size: 30, type: 'x'}
    ],
    [
      'a size of 8 GiB and more in base-256',
      header('big', 9 * 2 ** 30, '0', true),
      {name: 'big', size: 9 * 2 ** 30, type: '0'}
    ]
  ])('reads %s', (_name, block, expected) => {
    expect(parseTarHeader(block)).toEqual(expected)
  })

  it('joins the ustar prefix and name', () => {
    const b = header('layer.tar', 0)
    b.write('blobs/sha256', 345)
    // The checksum covers the prefix: recompute it.
    b.write('        ', 148)
    let sum = 0
    for (const byte of b) sum += byte
    b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
    expect(parseTarHeader(b)?.name).toBe('blobs/sha256/layer.tar')
  })

  it('ends at a zero block and refuses a block that is not a header', () => {
    expect(parseTarHeader(Buffer.alloc(512))).toBeUndefined()
    const bad = header('x', 1)
    bad[0] = 0x41
    expect(() => parseTarHeader(bad)).toThrow('not a tar archive')
    expect(() => parseTarHeader(Buffer.alloc(10))).toThrow('512 bytes')
  })

  it('reads PAX records and applies path and size', () => {
    const records = parsePaxRecords(Buffer.from('20 path=abc/def.txt\n15 size=123456\n'))
    expect(records).toEqual({path: 'abc/def.txt', size: '123456'})
    expect(withExtensions({name: 'short', size: 0, type: '0'}, records, undefined)).toEqual({
      name: 'abc/def.txt',
      size: 123456,
      type: '0'
    })
    expect(withExtensions({name: 's', size: 1, type: '0'}, undefined, 'long/name')).toEqual({
      name: 'long/name',
      size: 1,
      type: '0'
    })
  })

  it('pads bodies to whole blocks', () => {
    expect([0, 1, 511, 512, 513].map(padding)).toEqual([0, 511, 1, 0, 511])
  })
})

describe('reading a tar stream', () => {
  const long = `blobs/sha256/${'f'.repeat(64)}/${'n'.repeat(60)}`
  const archive = tarArchive([
    {name: 'a.json', data: Buffer.from('{"a":1}')},
    {name: 'empty', data: Buffer.alloc(0)},
    {name: long, data: Buffer.from('x'.repeat(1500))},
    {name: 'z', data: Buffer.from('last')}
  ])

  it.each([1, 7, 512, 999, 100_000])(
    'gives every file whatever the chunk size (%i)',
    async size => {
      expect(await read(archive, size)).toEqual([
        ['a.json', '{"a":1}'],
        ['empty', ''],
        [long, 'x'.repeat(1500)],
        ['z', 'last']
      ])
    }
  )

  it('skips what a reader leaves of a body', async () => {
    const names: string[] = []
    let firstPart = 0
    for await (const e of tarEntries(Readable.from([archive]))) {
      names.push(e.name)
      if (e.name !== long) continue
      for await (const p of e.body()) {
        firstPart = p.length
        break
      }
    }
    expect(names).toEqual(['a.json', 'empty', long, 'z'])
    expect(firstPart).toBeGreaterThan(0)
  })

  it('fails on an archive that ends in the middle of a file', async () => {
    await expect(read(archive.subarray(0, 2000))).rejects.toThrow('ended in the middle')
  })

  it('reads what GNU tar writes, long names included', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'dgs-tar-'))
    try {
      const name = `${'d'.repeat(80)}/${'f'.repeat(80)}`
      mkdirSync(path.join(dir, 'src', 'd'.repeat(80)), {recursive: true})
      writeFileSync(path.join(dir, 'src', name), 'gnu')
      for (const format of ['gnu', 'pax']) {
        const out = path.join(dir, `${format}.tar`)
        execFileSync('tar', [`--format=${format}`, '-C', path.join(dir, 'src'), '-cf', out, name])
        expect(await read(readFileSync(out))).toEqual([[name, 'gnu']])
      }
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})

describe('pieces of a stream', () => {
  it('gives the chunks as the stream emitted them, however many piled up', async () => {
    const chunks = Array.from({length: 40}, (_, i) => Buffer.alloc(1000, i))
    const got: Buffer[] = []
    for await (const c of pieces(Readable.from(chunks))) {
      got.push(c)
      await new Promise(r => setTimeout(r, 1))
    }
    expect(got.map(c => c.length)).toEqual(chunks.map(c => c.length))
    expect(Buffer.concat(got).equals(Buffer.concat(chunks))).toBe(true)
  })

  it('ends when the stream is destroyed, and throws its error', async () => {
    const broken = new Readable({read() {}})
    broken.push(Buffer.from('a'))
    setTimeout(() => broken.destroy(new Error('the daemon went away')), 5)
    const read = async (): Promise<void> => {
      for await (const c of pieces(broken)) void c
    }
    await expect(read()).rejects.toThrow('the daemon went away')
  })
})
