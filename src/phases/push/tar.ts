/**
 * Tar headers as `docker save` writes them (pure): ustar with its name prefix, PAX extended
 * headers (long names, sizes of 8 GiB and more) and GNU long names and base-256 sizes.
 */

/** The size of a tar block; headers are one block, bodies are padded to whole blocks. */
export const BLOCK = 512

/** One header, with the extended records that applied to it already folded in. */
export interface TarHeader {
  name: string
  size: number
  /** The type flag: '0' a file, '5' a folder, 'x' a PAX header, 'L' a GNU long name, … */
  type: string
}

function text(block: Uint8Array, start: number, length: number): string {
  const field = block.subarray(start, start + length)
  const end = field.indexOf(0)
  return Buffer.from(end < 0 ? field : field.subarray(0, end)).toString('utf8')
}

/** A numeric field: octal text, or GNU base-256 when its first byte has the high bit set. */
function numeric(block: Uint8Array, start: number, length: number): number {
  if ((block[start] & 0x80) !== 0) {
    let value = block[start] & 0x7f
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i]
    return value
  }
  const digits = text(block, start, length).trim()
  return digits === '' ? 0 : parseInt(digits, 8)
}

/** The header checksum: the sum of all bytes with the checksum field counted as spaces. */
function checksumOk(block: Uint8Array): boolean {
  let sum = 0
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]
  return sum === numeric(block, 148, 8)
}

/**
 * Reads one 512-byte header; undefined for an all-zero block (the end of the archive). Throws on a
 * block that is not a header, which means the stream lost its framing.
 */
export function parseTarHeader(block: Uint8Array): TarHeader | undefined {
  if (block.length !== BLOCK) throw new Error(`a tar header is ${BLOCK} bytes, not ${block.length}`)
  if (block.every(b => b === 0)) return undefined
  if (!checksumOk(block)) throw new Error('the image export is not a tar archive (bad header)')
  let name = text(block, 0, 100)
  if (text(block, 257, 5) === 'ustar') {
    const prefix = text(block, 345, 155)
    if (prefix !== '') name = `${prefix}/${name}`
  }
  const flag = block[156] === 0 ? '0' : String.fromCharCode(block[156])
  return {name, size: numeric(block, 124, 12), type: flag}
}

/** PAX records (`<length> <key>=<value>\n`), of which `path` and `size` matter here. */
export function parsePaxRecords(data: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {}
  const buf = Buffer.from(data)
  let at = 0
  while (at < buf.length) {
    const space = buf.indexOf(0x20, at)
    if (space < 0) break
    const length = Number(buf.subarray(at, space).toString('ascii'))
    if (!Number.isInteger(length) || length <= 0) break
    const record = buf.subarray(space + 1, at + length - 1).toString('utf8')
    const eq = record.indexOf('=')
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1)
    at += length
  }
  return out
}

/** The header with what a preceding PAX header or GNU long name says about it. */
export function withExtensions(
  header: TarHeader,
  pax: Record<string, string> | undefined,
  longName: string | undefined
): TarHeader {
  const name = pax?.path ?? longName ?? header.name
  const size = pax?.size !== undefined ? Number(pax.size) : header.size
  return {...header, name, size}
}

/** Bytes of padding after a body of `size` bytes. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK
}
