/**
 * Image manifests as data (pure): what a registry holds for a tag, what a `docker save` archive
 * lists, and the OCI manifest the action pushes; layer media types.
 */
import {createHash} from 'node:crypto'

/** Media types the action reads and writes. */
export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json'
} as const

/** Every manifest type a registry may answer with, for the Accept header. */
export const MANIFEST_ACCEPT = [
  MEDIA.ociIndex,
  MEDIA.ociManifest,
  MEDIA.dockerList,
  MEDIA.dockerManifest
].join(', ')

/** A content descriptor: what a manifest says about one blob. */
export interface Descriptor {
  mediaType: string
  digest: string
  size: number
}

/** What a registry holds for a tag: the image's digest, config and layers, and its bytes there. */
export interface RemoteImage {
  digest: string
  /** The config's digest (an image manifest; none for an index). */
  config?: string
  /** The layers an image manifest lists. */
  layers: Descriptor[]
  /** Config and layers in bytes, each blob once (every manifest of an index). */
  bytes: number
}

/** A manifest read from a registry: an image (config and layers) or an index of manifests. */
export interface RemoteManifest {
  digest: string
  mediaType: string
  config?: Descriptor
  layers: Descriptor[]
  /** The manifests an index lists. */
  manifests: Descriptor[]
}

/** `sha256:<hex>` of some bytes. */
export function sha256Digest(data: string | Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

function descriptor(v: unknown): Descriptor | undefined {
  if (typeof v !== 'object' || v === null) return undefined
  const d = v as Record<string, unknown>
  if (typeof d.digest !== 'string' || typeof d.size !== 'number') return undefined
  return {
    mediaType: typeof d.mediaType === 'string' ? d.mediaType : '',
    digest: d.digest,
    size: d.size
  }
}

function descriptors(v: unknown): Descriptor[] {
  return Array.isArray(v) ? v.map(descriptor).filter((d): d is Descriptor => d !== undefined) : []
}

/** Reads a manifest body; `contentType` wins over the body's own mediaType (older manifests have none). */
export function parseManifest(body: string, digest: string, contentType?: string): RemoteManifest {
  const json = JSON.parse(body) as Record<string, unknown>
  const own = typeof json.mediaType === 'string' ? json.mediaType : ''
  const mediaType = (contentType ?? '').split(';')[0].trim() || own
  return {
    digest,
    mediaType,
    config: descriptor(json.config),
    layers: descriptors(json.layers),
    manifests: descriptors(json.manifests)
  }
}

/** True for an index (a list of manifests, one per platform). */
export function isIndex(m: Pick<RemoteManifest, 'mediaType' | 'manifests'>): boolean {
  return (
    m.mediaType === MEDIA.ociIndex || m.mediaType === MEDIA.dockerList || m.manifests.length > 0
  )
}

/**
 * The image's bytes in the registry: its config and layers as the manifests list them, each
 * distinct blob once (an index counts the blobs of every manifest given).
 */
export function imageBytes(
  manifests: readonly Pick<RemoteManifest, 'config' | 'layers'>[]
): number {
  const blobs = new Map<string, number>()
  for (const m of manifests) {
    for (const d of [...(m.config ? [m.config] : []), ...m.layers]) blobs.set(d.digest, d.size)
  }
  return [...blobs.values()].reduce((a, b) => a + b, 0)
}

/** The digest a `blobs/sha256/<hex>` archive path names (Docker 25 and later), if it is one. */
export function blobPathDigest(name: string): string | undefined {
  const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name)
  return m ? `sha256:${m[1]}` : undefined
}

/** The OCI image manifest the action pushes: the config as Docker wrote it, then the layers. */
export function imageManifest(config: Omit<Descriptor, 'mediaType'>, layers: Descriptor[]): string {
  const d = (x: Descriptor): Descriptor => ({
    mediaType: x.mediaType,
    digest: x.digest,
    size: x.size
  })
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: d({...config, mediaType: MEDIA.ociConfig}),
    layers: layers.map(d)
  })
}

/** The uncompressed layer digests (diff_ids) an image config lists, base first. */
export function configDiffIds(configJson: string): string[] {
  const json = JSON.parse(configJson) as {rootfs?: {diff_ids?: unknown}}
  const ids = json.rootfs?.diff_ids
  return Array.isArray(ids) ? ids.map(String) : []
}

/** The compression a blob's first bytes show (gzip and zstd magic numbers). */
export function compressionOf(head: Uint8Array): 'gzip' | 'zstd' | 'none' {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd'
  return 'none'
}

/** The OCI layer media type for a compression. */
export function layerMediaType(c: 'gzip' | 'zstd' | 'none'): string {
  return c === 'gzip' ? MEDIA.layerGzip : c === 'zstd' ? MEDIA.layerZstd : MEDIA.layerTar
}

/**
 * A layer the registry holds, as the action's OCI manifest may list it so that Docker 20.10 and
 * later pull it: OCI tar or tar+gzip as is, Docker's gzip layer under OCI's name for the same
 * bytes; undefined for what an older engine cannot pull (zstd, foreign or unnamed types) or a
 * size the registry did not give.
 */
export function portableLayer(d: Descriptor): Descriptor | undefined {
  if (!(d.size >= 0)) return undefined
  if (d.mediaType === MEDIA.layerTar || d.mediaType === MEDIA.layerGzip) return d
  if (d.mediaType === MEDIA.dockerLayerGzip) return {...d, mediaType: MEDIA.layerGzip}
  return undefined
}
