/** Reads a tar archive as it streams in, entry by entry, without holding a body in memory. */
import type {Readable} from 'node:stream'
import {BLOCK, padding, parsePaxRecords, parseTarHeader, withExtensions} from './tar.js'

/** One file of the archive; its body must be read to the end, or left, before the next entry. */
export interface TarEntry {
  name: string
  size: number
  /** The body as it arrives, in the source's own chunks (no copy). */
  body(): AsyncGenerator<Buffer>
}

const EMPTY: Buffer = Buffer.alloc(0)

const asBuffer = (v: Buffer | string): Buffer => (typeof v === 'string' ? Buffer.from(v) : v)

/** Bytes from an async source, taken exactly as many as asked. */
class Bytes {
  private head: Buffer = EMPTY
  private readonly it: AsyncIterator<Buffer | string>

  constructor(source: AsyncIterable<Buffer | string>) {
    this.it = source[Symbol.asyncIterator]()
  }

  private async more(): Promise<boolean> {
    const r = await this.it.next()
    if (r.done === true) return false
    this.head =
      this.head.length === 0 ? asBuffer(r.value) : Buffer.concat([this.head, asBuffer(r.value)])
    return true
  }

  /** Exactly n bytes, or fewer at the end of the source. */
  async read(n: number): Promise<Buffer> {
    while (this.head.length < n) if (!(await this.more())) break
    const out = this.head.subarray(0, n)
    this.head = this.head.subarray(out.length)
    return out
  }

  /** n bytes as they come; throws when the source ends first. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n
    while (left > 0) {
      if (this.head.length === 0) {
        const r = await this.it.next()
        if (r.done === true) throw new Error('the image export ended in the middle of a file')
        this.head = asBuffer(r.value)
      }
      const part = this.head.subarray(0, Math.min(left, this.head.length))
      this.head = this.head.subarray(part.length)
      left -= part.length
      yield part
    }
  }

  async skip(n: number): Promise<void> {
    for await (const part of this.take(n)) void part
  }

  /** Reads the source to its end (the archive's closing zeros): a pipe left unread never closes. */
  async drain(): Promise<void> {
    this.head = EMPTY
    for (let r = await this.it.next(); r.done !== true; r = await this.it.next()) void r
  }
}

/**
 * A stream's chunks as it emitted them. (A Readable's own async iterator joins the chunks that
 * piled up into a new buffer: a copy of every byte, and garbage to collect.)
 */
export function pieces(stream: Readable): AsyncIterable<Buffer> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Buffer> {
      const queue: Buffer[] = []
      let ended = false
      let failure: Error | undefined
      let wake: (() => void) | undefined
      const notify = (): void => {
        wake?.()
        wake = undefined
      }
      stream.on('data', (chunk: Buffer) => {
        queue.push(chunk)
        if (queue.length >= 16) stream.pause()
        notify()
      })
      stream.once('end', () => {
        ended = true
        notify()
      })
      stream.once('close', () => {
        ended = true
        notify()
      })
      stream.once('error', e => {
        failure = e
        notify()
      })
      return {
        async next(): Promise<IteratorResult<Buffer>> {
          while (queue.length === 0) {
            if (failure) throw failure
            if (ended) return {done: true, value: undefined}
            stream.resume()
            await new Promise<void>(r => (wake = r))
          }
          const value = queue.shift() as Buffer
          if (queue.length < 4 && stream.isPaused()) stream.resume()
          return {done: false, value}
        }
      }
    }
  }
}

/**
 * The regular files of a tar stream, in archive order (PAX and GNU long names applied); the source
 * is read to its end.
 */
export async function* tarEntries(
  source: AsyncIterable<Buffer | string>
): AsyncGenerator<TarEntry> {
  const bytes = new Bytes(source)
  let pax: Record<string, string> | undefined
  let longName: string | undefined
  for (;;) {
    const block = await bytes.read(BLOCK)
    if (block.length === 0) return
    if (block.length < BLOCK) throw new Error('the image export ended in the middle of a header')
    const raw = parseTarHeader(block)
    if (raw === undefined) return bytes.drain()
    if (raw.type === 'x' || raw.type === 'L') {
      const data = await bytes.read(raw.size)
      await bytes.skip(padding(raw.size))
      if (raw.type === 'x') pax = parsePaxRecords(data)
      else longName = data.toString('utf8').replace(/\0+$/, '')
      continue
    }
    const header = withExtensions(raw, pax, longName)
    pax = undefined
    longName = undefined
    let left = header.size
    if (header.type === '0' || header.type === '7') {
      yield {
        name: header.name,
        size: header.size,
        async *body() {
          for await (const part of bytes.take(left)) {
            left -= part.length
            yield part
          }
        }
      }
    }
    // Whatever the reader left of the body, and the padding, are skipped.
    await bytes.skip(left)
    await bytes.skip(padding(header.size))
  }
}
