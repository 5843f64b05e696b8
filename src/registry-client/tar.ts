/**
 * Reads a tar archive (a `docker save` export) as it streams in, entry by entry, without holding
 * a body in memory: tar-stream's parser (ustar, PAX, GNU long names and base-256 sizes).
 */
import type {Readable} from 'node:stream'
import * as tar from 'tar-stream'

/** One file of the archive; its body must be read to the end, or left, before the next entry. */
export interface TarEntry {
  name: string
  size: number
  /** The body as it arrives. */
  body(): AsyncIterableIterator<Buffer>
}

/** What the parser says of an archive cut short, in words about the export. */
function failure(e: unknown): Error {
  const message = e instanceof Error ? e.message : String(e)
  return /unexpected end/i.test(message)
    ? new Error('the image export ended in the middle of a file')
    : new Error(`the image export is not a tar archive (${message})`)
}

/** The regular files of a tar stream, in archive order; what a reader leaves of a body is skipped. */
export async function* tarEntries(source: Readable): AsyncGenerator<TarEntry> {
  const extract = tar.extract()
  source.once('error', e => extract.destroy(e))
  source.pipe(extract)
  try {
    for await (const entry of extract) {
      const {name, size = 0, type} = entry.header
      if (type === 'file' || type === 'contiguous-file') {
        yield {
          name,
          size,
          body: () => entry[Symbol.asyncIterator]() as AsyncIterableIterator<Buffer>
        }
      }
      entry.resume()
    }
  } catch (e) {
    if (source.errored) throw source.errored
    throw failure(e)
  } finally {
    source.unpipe(extract)
  }
}
