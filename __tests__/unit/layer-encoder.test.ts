import {createHash, randomBytes} from 'node:crypto'
import {gunzipSync} from 'node:zlib'
import {describe, expect, it} from '@jest/globals'
import {judgeCompression, LayerEncoder} from '../../src/registry-client/gzip-encoder.js'

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** Text-like bytes that compress well (as most layers do). */
function text(size: number): Buffer {
  if (size > 1 << 20) {
    const mib = text(1 << 20)
    return Buffer.concat(Array.from({length: Math.ceil(size / mib.length)}, () => mib)).subarray(
      0,
      size
    )
  }
  const words = ['usr', 'lib', 'python3', 'site-packages', 'import', 'def', 'return', '\n']
  const out: string[] = []
  let n = 0
  for (let i = 0; n < size; i++) {
    const w = words[(i * 7 + (i >> 3)) % words.length]
    out.push(w, ' ')
    n += w.length + 1
  }
  return Buffer.from(out.join('')).subarray(0, size)
}

/** Runs a layer through the encoder in chunks of `chunk` bytes; what the sink got, and the result. */
async function encode(data: Buffer, mode: 'gzip' | 'none', chunk = 65536) {
  const got: Buffer[] = []
  const enc = new LayerEncoder(
    mode,
    b => {
      got.push(b)
      return Promise.resolve()
    },
    true
  )
  for (let i = 0; i < data.length; i += chunk) await enc.write(data.subarray(i, i + chunk))
  const r = await enc.end()
  return {out: Buffer.concat(got), ...r}
}

describe('the layer encoder', () => {
  it.each([0, 100, 1 << 20, (1 << 20) + 1, 3.5 * (1 << 20)])(
    'gives one gzip member of %i bytes that gunzip reads back, and the diff_id',
    async size => {
      const data = text(size)
      const r = await encode(data, 'gzip', 100_000)
      expect(gunzipSync(r.out).equals(data)).toBe(true)
      expect(r.diffId).toBe(sha(data))
      expect(r.size).toBe(size)
    }
  )

  it('gives the same bytes for the same layer, however it is chunked', async () => {
    const data = text(5 << 20)
    const a = await encode(data, 'gzip', 65536)
    const b = await encode(data, 'gzip', 1_000_003)
    expect(a.out.equals(b.out)).toBe(true)
    expect(a.out.length).toBeLessThan(data.length / 3)
  })

  it('stores the blocks of a part that does not compress, and compresses again where it does', async () => {
    const data = Buffer.concat([text(3 << 20), randomBytes(24 << 20), text(24 << 20)])
    const a = await encode(data, 'gzip', 65536)
    expect(gunzipSync(a.out).equals(data)).toBe(true)
    // The random part costs its own size (stored); most of the text after it is compressed again.
    expect(a.out.length).toBeGreaterThan(24 << 20)
    expect(a.out.length).toBeLessThan((24 << 20) + (14 << 20))
    const b = await encode(data, 'gzip', 777_777)
    expect(b.out.equals(a.out)).toBe(true)
  }, 60_000)

  it('passes a layer through as is', async () => {
    const data = randomBytes(300_000)
    const r = await encode(data, 'none')
    expect(r.out.equals(data)).toBe(true)
    expect(r.diffId).toBe(sha(data))
  })

  it('judges random bytes not worth gzip, and text worth it', async () => {
    expect(await judgeCompression(randomBytes(1 << 20))).toBe('none')
    expect(await judgeCompression(text(1 << 20))).toBe('gzip')
  })

  it('stops with the sink’s failure', async () => {
    const enc = new LayerEncoder('gzip', () => Promise.reject(new Error('connection reset')), false)
    const data = text(6 << 20)
    await expect(
      (async () => {
        for (let i = 0; i < data.length; i += 65536) await enc.write(data.subarray(i, i + 65536))
        await enc.end()
      })()
    ).rejects.toThrow('connection reset')
  })
})
