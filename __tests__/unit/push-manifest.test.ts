import {describe, expect, it} from '@jest/globals'
import {
  blobPathDigest,
  compressionOf,
  configDiffIds,
  imageBytes,
  imageManifest,
  isIndex,
  layerMediaType,
  MEDIA,
  parseManifest,
  portableLayer,
  sha256Digest
} from '../../src/registry-client/manifest.js'
import {gzipHeader, gzipTrailer, worthCompressing} from '../../src/registry-client/gzip-encoder.js'

const d = (c: string, size: number, mediaType: string = MEDIA.layerGzip) => ({
  mediaType,
  digest: `sha256:${c.repeat(64)}`,
  size
})

describe('manifests', () => {
  it('reads an image manifest: config and layers', () => {
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.dockerManifest,
      config: d('c', 1800, 'application/vnd.docker.container.image.v1+json'),
      layers: [d('1', 100), d('2', 200)]
    })
    const m = parseManifest(body, 'sha256:m', undefined)
    expect(m).toEqual({
      digest: 'sha256:m',
      mediaType: MEDIA.dockerManifest,
      config: d('c', 1800, 'application/vnd.docker.container.image.v1+json'),
      layers: [d('1', 100), d('2', 200)],
      manifests: []
    })
    expect(isIndex(m)).toBe(false)
    expect(imageBytes([m])).toBe(2100)
  })

  it('reads an index by its Content-Type when the body names none', () => {
    const body = JSON.stringify({schemaVersion: 2, manifests: [d('a', 500, MEDIA.ociManifest)]})
    const m = parseManifest(body, 'sha256:i', `${MEDIA.ociIndex}; charset=utf-8`)
    expect(m.mediaType).toBe(MEDIA.ociIndex)
    expect(isIndex(m)).toBe(true)
    expect(m.manifests).toEqual([d('a', 500, MEDIA.ociManifest)])
  })

  it('counts each blob once across the manifests of an index', () => {
    const amd = {config: d('a', 10), layers: [d('1', 100), d('2', 200)]}
    const arm = {config: d('b', 10), layers: [d('1', 100), d('3', 300)]}
    expect(imageBytes([amd, arm])).toBe(620)
    expect(imageBytes([])).toBe(0)
  })

  it('writes the OCI manifest the action pushes, config first, then layers in order', () => {
    const text = imageManifest({digest: 'sha256:cfg', size: 7}, [
      d('1', 100),
      d('2', 200, MEDIA.layerTar)
    ])
    expect(JSON.parse(text)).toEqual({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: {mediaType: MEDIA.ociConfig, digest: 'sha256:cfg', size: 7},
      layers: [d('1', 100), d('2', 200, MEDIA.layerTar)]
    })
    // The same image always gives the same bytes, so the same digest.
    expect(sha256Digest(text)).toBe(
      sha256Digest(
        imageManifest({digest: 'sha256:cfg', size: 7}, [d('1', 100), d('2', 200, MEDIA.layerTar)])
      )
    )
  })

  it('reads the diff_ids of an image config', () => {
    expect(
      configDiffIds('{"rootfs":{"type":"layers","diff_ids":["sha256:a","sha256:b"]}}')
    ).toEqual(['sha256:a', 'sha256:b'])
    expect(configDiffIds('{}')).toEqual([])
  })

  it('names blobs of the OCI layout by digest', () => {
    expect(blobPathDigest(`blobs/sha256/${'a'.repeat(64)}`)).toBe(`sha256:${'a'.repeat(64)}`)
    expect(blobPathDigest(`${'a'.repeat(64)}/layer.tar`)).toBeUndefined()
    expect(blobPathDigest('blobs/sha256/short')).toBeUndefined()
  })
})

describe('layer encodings', () => {
  it.each<[number, number, boolean]>([
    [1_048_576, 1_048_576 + 300, false],
    // 3% saved at least: 1_017_118 bytes of 1 MiB.
    [1_048_576, 1_017_200, false],
    [1_048_576, 1_017_118, true],
    [1_048_576, 990_000, true],
    [1_048_576, 300_000, true],
    [0, 0, false]
  ])('a sample of %i bytes compressed to %i: gzip %s', (sample, compressed, worth) => {
    expect(worthCompressing(sample, compressed)).toBe(worth)
  })

  it('tells compression from the first bytes', () => {
    expect(compressionOf(Buffer.from([0x1f, 0x8b, 8]))).toBe('gzip')
    expect(compressionOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd')
    expect(compressionOf(Buffer.from('bin/'))).toBe('none')
    expect(['gzip', 'zstd', 'none'].map(c => layerMediaType(c as 'gzip'))).toEqual([
      MEDIA.layerGzip,
      MEDIA.layerZstd,
      MEDIA.layerTar
    ])
  })

  it('writes a gzip header with no name or time, and the trailer little-endian', () => {
    expect([...gzipHeader()]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])
    expect([...gzipTrailer(0x12345678, 2 ** 32 + 5)]).toEqual([0x78, 0x56, 0x34, 0x12, 5, 0, 0, 0])
  })
})

describe('portableLayer', () => {
  const d = (mediaType: string, size = 10) => ({mediaType, digest: 'sha256:a', size})
  it.each<[string, ReturnType<typeof d>, string | undefined]>([
    ['an OCI tar', d(MEDIA.layerTar), MEDIA.layerTar],
    ['an OCI gzip', d(MEDIA.layerGzip), MEDIA.layerGzip],
    [
      'Docker’s gzip, under OCI’s name',
      d('application/vnd.docker.image.rootfs.diff.tar.gzip'),
      MEDIA.layerGzip
    ],
    ['zstd (Docker 20.10 cannot pull it)', d(MEDIA.layerZstd), undefined],
    ['no type', d(''), undefined],
    ['no size', d(MEDIA.layerGzip, -1), undefined]
  ])('%s', (_what, layer, mediaType) => {
    expect(portableLayer(layer)?.mediaType).toBe(mediaType)
  })
})
