/**
 * The gzip encoder (with when gzip pays): encodes a layer on its way to the registry: as is, or as one gzip member compressed in blocks on
 * every core (the way pigz does: each block primed with the previous 32 KiB, joined by sync flushes).
 */
import {createHash, type Hash} from 'node:crypto'
import {promisify} from 'node:util'
import * as zlib from 'node:zlib'

/**
 * Gzip is used only when it saves at least this share of a layer's bytes: low enough that a
 * stretch stored as is never costs more bytes than gzip at skopeo's default level would send.
 */
export const MIN_SAVING = 0.03
/** How much of a layer's start is compressed to judge it. */
export const SAMPLE_BYTES = 256 << 10

/** Whether a layer (or a block of one) is worth gzip, judged by a sample compressed at the push's level. */
export function worthCompressing(sampleSize: number, compressedSize: number): boolean {
  return sampleSize > 0 && compressedSize <= sampleSize * (1 - MIN_SAVING)
}

/** A gzip member header with no name and time 0, so equal layers give equal bytes. */
export function gzipHeader(): Buffer {
  return Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff])
}

/** The gzip trailer: CRC-32 and length (mod 2^32) of the uncompressed bytes, little-endian. */
export function gzipTrailer(crc: number, size: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeUInt32LE(crc >>> 0, 0)
  b.writeUInt32LE(size % 2 ** 32, 4)
  return b
}

const deflateRaw = promisify<zlib.InputType, zlib.ZlibOptions, Buffer>(zlib.deflateRaw)

/** Bytes per block compressed at once; output does not depend on the number of cores. */
const BLOCK_BYTES = 1 << 20
const DICTIONARY_BYTES = 32 << 10
/**
 * zlib's output buffer: a whole block's output in one piece. At zlib's default (16 KiB) a block
 * took some 30 trips between the thread pool and the main thread, whose callbacks were the
 * largest item of the main thread's profile in a push of two root file systems.
 */
const CHUNK_BYTES = BLOCK_BYTES + (64 << 10)
/**
 * zlib's level 4, its fastest lazy-matching level: on Debian root file systems it sends fewer
 * bytes than skopeo's default (Go's gzip at level 6: 108.8 MB for a 274 MB bookworm layer, 107.9
 * MB at level 4, 113.9 MB at level 1) for a fifth more CPU time than level 1, a third less than 6.
 */
const LEVEL = 4
/** Blocks in flight: enough to keep zlib's four worker threads busy. */
const IN_FLIGHT = 4
/**
 * In a part of a layer that does not compress, blocks are stored (level 0, a copy) and only every
 * so many is compressed again to notice when the data changes.
 */
const REPROBE = 8

/** Whether a layer whose first bytes are `sample` is worth gzip. */
export async function judgeCompression(sample: Buffer): Promise<'gzip' | 'none'> {
  const probe = sample.subarray(0, SAMPLE_BYTES)
  const out = await deflateRaw(probe, {level: LEVEL, chunkSize: CHUNK_BYTES})
  return worthCompressing(probe.length, out.length) ? 'gzip' : 'none'
}

/** What the encoder read: the layer's uncompressed digest (when asked for) and size. */
export interface EncodedInput {
  diffId?: string
  size: number
}

/** Feeds one layer into `sink` in order, compressed or not, with backpressure from the sink. */
export class LayerEncoder {
  private readonly diff?: Hash
  private pending: Buffer[] = []
  private pendingBytes = 0
  private previous?: Buffer
  private crc = 0
  private size = 0
  /** Each queued block's promise: compressed and handed to the sink. */
  private readonly queued: Promise<void>[] = []
  /**
   * Per block of the last IN_FLIGHT: whether it was compressed (not stored), and whether that
   * paid. A window, so that a layer of any size keeps only a few.
   */
  private readonly judged: Promise<{probed: boolean; worth: boolean}>[] = []
  private blocks = 0
  private compressible = true
  private written: Promise<void> = Promise.resolve()
  private error?: Error

  constructor(
    private readonly mode: 'gzip' | 'none',
    private readonly sink: (b: Buffer) => Promise<void>,
    hashInput: boolean
  ) {
    if (hashInput) this.diff = createHash('sha256')
    if (mode === 'gzip') void this.emit(Promise.resolve(gzipHeader()))
  }

  /** Queues output in order: the sink sees each piece after the one before it. */
  private emit(piece: Promise<Buffer>): Promise<void> {
    const next = Promise.all([this.written, piece]).then(([, b]) => this.sink(b))
    next.catch((e: unknown) => (this.error ??= e instanceof Error ? e : new Error(String(e))))
    this.written = next
    return next
  }

  private check(): void {
    if (this.error !== undefined) throw this.error
  }

  /**
   * The level of block `n`, from the block IN_FLIGHT before it (done whatever the timing), so the
   * same layer always gives the same bytes. Blocks are taken one at a time, in order.
   */
  private async levelOf(n: number): Promise<number> {
    if (n >= IN_FLIGHT) {
      const judging = this.judged.shift()
      if (judging === undefined)
        throw new Error(`block ${n}: no judgement of block ${n - IN_FLIGHT}`)
      const seen = await judging
      if (seen.probed) this.compressible = seen.worth
    }
    return this.compressible || n % REPROBE === 0 ? LEVEL : 0
  }

  private async block(data: Buffer, last: boolean): Promise<void> {
    this.crc = zlib.crc32(data, this.crc)
    const dictionary = this.previous
    this.previous = data.length >= DICTIONARY_BYTES ? data.subarray(-DICTIONARY_BYTES) : undefined
    const n = this.blocks++
    const level = await this.levelOf(n)
    const out = deflateRaw(data, {
      level,
      chunkSize: CHUNK_BYTES,
      ...(dictionary && level > 0 ? {dictionary} : {}),
      // All but the last block end byte-aligned without the final bit, so they join.
      finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH
    })
    this.judged.push(
      out.then(
        b => ({probed: level > 0, worth: worthCompressing(data.length, b.length)}),
        () => ({probed: false, worth: false})
      )
    )
    this.queued.push(this.emit(out).catch(() => undefined))
    if (this.queued.length >= IN_FLIGHT) await this.queued.shift()
    this.check()
  }

  /** Takes the next bytes of the layer. */
  async write(chunk: Buffer): Promise<void> {
    this.check()
    this.diff?.update(chunk)
    this.size += chunk.length
    if (this.mode === 'none') {
      await this.emit(Promise.resolve(chunk))
      return
    }
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    while (this.pendingBytes >= BLOCK_BYTES) {
      const all = Buffer.concat(this.pending)
      const rest = all.subarray(BLOCK_BYTES)
      this.pending = rest.length > 0 ? [rest] : []
      this.pendingBytes = rest.length
      await this.block(all.subarray(0, BLOCK_BYTES), false)
    }
  }

  /** Flushes the last block and the gzip trailer; resolves once the sink has every byte. */
  async end(): Promise<EncodedInput> {
    if (this.mode === 'gzip') {
      await this.block(Buffer.concat(this.pending), true)
      void this.emit(Promise.resolve(gzipTrailer(this.crc, this.size)))
    }
    await this.written
    return {diffId: this.diff ? `sha256:${this.diff.digest('hex')}` : undefined, size: this.size}
  }
}
