/**
 * Tar archives as Docker writes them (Go's archive/tar: ustar, PAX records for long names), and
 * `docker save` archives in both layouts: Docker 20.10's (`<v1 id>/layer.tar`, `<id>.json`) and
 * Docker 25's OCI layout (`blobs/sha256/<digest>`, index.json), entries in name order as Docker
 * writes them.
 */
import {createHash} from 'node:crypto'

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`
}

/** One ustar header block; `type` '0' a file, 'x' PAX records. */
export function header(name: string, size: number, type = '0', base256 = false): Buffer {
  const b = Buffer.alloc(512)
  b.write(name.slice(0, 100), 0)
  b.write(octal(0o644, 8), 100)
  b.write(octal(0, 8), 108)
  b.write(octal(0, 8), 116)
  if (base256) {
    b[124] = 0x80
    let v = size
    for (let i = 135; i > 124; i--) {
      b[i] = v % 256
      v = Math.floor(v / 256)
    }
  } else b.write(octal(size, 12), 124)
  b.write(octal(0, 12), 136)
  b.write('        ', 148)
  b.write(type, 156)
  b.write('ustar\u000000', 257)
  let sum = 0
  for (const byte of b) sum += byte
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
  return b
}

function pad(data: Buffer): Buffer {
  const extra = (512 - (data.length % 512)) % 512
  return Buffer.concat([data, Buffer.alloc(extra)])
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`
  let len = body.length + String(body.length).length
  if (String(len).length !== String(body.length).length) len++
  return `${len}${body}`
}

/** A tar archive of these files; names over 100 characters get a PAX header, as Go writes them. */
export function tarArchive(files: {name: string; data: Buffer}[]): Buffer {
  const parts: Buffer[] = []
  for (const f of files) {
    if (f.name.length > 100) {
      const pax = Buffer.from(paxRecord('path', f.name))
      parts.push(header('PaxHeaders.0/x', pax.length, 'x'), pad(pax))
    }
    parts.push(header(f.name, f.data.length), pad(f.data))
  }
  parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

/** A layer: a tar of files. */
export function layer(files: Record<string, Buffer | string>): Buffer {
  return tarArchive(Object.entries(files).map(([name, d]) => ({name, data: Buffer.from(d)})))
}

/** An image as the daemon holds it: its config (and so its ID) and its layers. */
export interface SavedImage {
  id: string
  config: Buffer
  diffIds: string[]
  layers: Buffer[]
}

/** An image of these layers (its config lists their diff_ids, as Docker's does). */
export function image(layers: Buffer[], cmd = 'true'): SavedImage {
  const diffIds = layers.map(l => `sha256:${sha(l)}`)
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {Cmd: [cmd]},
      rootfs: {type: 'layers', diff_ids: diffIds}
    })
  )
  return {id: `sha256:${sha(config)}`, config, diffIds, layers}
}

/**
 * `docker save IMAGE` as Docker 20.10 (v1 folders) or Docker 25 and later (OCI layout) writes it;
 * `misplaced`: v1 folders whose json name the chain upside down (the top folder as the base).
 */
export function dockerSave(img: SavedImage, layout: 'v1' | 'oci', misplaced = false): Buffer {
  const hex = img.id.slice('sha256:'.length)
  const files: {name: string; data: Buffer}[] = []
  if (layout === 'v1') {
    // Docker derives each folder's name from the chain below it (and the top one from the config too).
    const v1: string[] = []
    img.diffIds.forEach((d, i) =>
      v1.push(
        sha(`${v1[i - 1] ?? ''}${d}${i === img.diffIds.length - 1 ? img.config.toString() : ''}`)
      )
    )
    img.layers.forEach((l, i) => {
      files.push({name: `${v1[i]}/VERSION`, data: Buffer.from('1.0')})
      // Each folder's json names its own id and, above the base, the folder below it.
      const below = misplaced ? v1[i + 1] : v1[i - 1]
      const json = {id: v1[i], ...(below ? {parent: below} : {}), created: '1970-01-01T00:00:00Z'}
      files.push({name: `${v1[i]}/json`, data: Buffer.from(JSON.stringify(json))})
      files.push({name: `${v1[i]}/layer.tar`, data: l})
    })
    files.push({name: `${hex}.json`, data: img.config})
    const manifest = [
      {Config: `${hex}.json`, RepoTags: null, Layers: v1.map(v => `${v}/layer.tar`)}
    ]
    files.push({name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest))})
  } else {
    const layerNames = img.diffIds.map(d => `blobs/sha256/${d.slice(7)}`)
    img.layers.forEach((l, i) => files.push({name: layerNames[i], data: l}))
    files.push({name: `blobs/sha256/${hex}`, data: img.config})
    const manifest = [{Config: `blobs/sha256/${hex}`, RepoTags: null, Layers: layerNames}]
    files.push({name: 'index.json', data: Buffer.from('{"schemaVersion":2,"manifests":[]}')})
    files.push({name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest))})
    files.push({name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}')})
  }
  files.sort((a, b) => (a.name < b.name ? -1 : 1))
  return tarArchive(files)
}
