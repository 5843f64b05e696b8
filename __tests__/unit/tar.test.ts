import {execFileSync} from 'node:child_process'
import {mkdtempSync, writeFileSync, mkdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import * as path from 'node:path'
import {Readable} from 'node:stream'
import {describe, expect, it} from '@jest/globals'
import {tarEntries} from '../../src/registry-client/tar.js'
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

/** The names of a stream's entries, bodies read whole. */
async function entryNames(stream: Readable): Promise<string[]> {
  const names: string[] = []
  for await (const e of tarEntries(stream)) {
    for await (const p of e.body()) void p
    names.push(e.name)
  }
  return names
}

describe('tar headers', () => {
  it('joins the ustar prefix and name', async () => {
    const b = header('layer.tar', 2)
    b.write('blobs/sha256', 345)
    // The checksum covers the prefix: recompute it.
    b.write('        ', 148)
    let sum = 0
    for (const byte of b) sum += byte
    b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
    const archive = Buffer.concat([b, Buffer.from('ok'), Buffer.alloc(510 + 1024)])
    expect(await read(archive)).toEqual([['blobs/sha256/layer.tar', 'ok']])
  })

  it('refuses a block that is not a header', async () => {
    const bad = Buffer.concat([header('x', 1), Buffer.alloc(1535)])
    bad[0] = 0x41
    await expect(read(bad)).rejects.toThrow('not a tar archive')
  })

  it('applies the path and size of PAX records', async () => {
    const records = Buffer.from('20 path=abc/def.txt\n11 size=3\n')
    const archive = Buffer.concat([
      header('PaxHeaders.0/x', records.length, 'x'),
      records,
      Buffer.alloc(512 - records.length),
      header('short', 0),
      Buffer.from('abc'),
      Buffer.alloc(509 + 1024)
    ])
    expect(await read(archive)).toEqual([['abc/def.txt', 'abc']])
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

  it('fails with the error of the stream it reads (the daemon went away)', async () => {
    const broken = new Readable({read() {}})
    broken.push(archive.subarray(0, 700))
    setTimeout(() => broken.destroy(new Error('the daemon went away')), 5)
    await expect(entryNames(broken)).rejects.toThrow('the daemon went away')
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
