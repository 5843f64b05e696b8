/**
 * Pushes images from Docker's classic image store through the registry's HTTP API: reads each
 * image once from the daemon (`docker save`, a stream), sends every layer the registry lacks (as
 * is to a registry on this host; elsewhere gzip in blocks on every core, or as is when gzip would
 * not pay), links what the registry already holds, and puts one OCI manifest per tag. What it
 * learns is kept per run and registry.
 */
import * as core from '@actions/core'
import {HostError, errorMessage, tailLines} from '../../errors.js'
import type {BlobUpload} from '../../registry-client/blob-upload.js'
import type {RegistryClient} from '../../registry-client/client.js'
import {judgeCompression, LayerEncoder, SAMPLE_BYTES} from '../../registry-client/gzip-encoder.js'
import {
  blobPathDigest,
  imageManifest,
  layerMediaType,
  MEDIA,
  sha256Digest,
  type Descriptor
} from '../../registry-client/manifest.js'
import {tarEntries, type TarEntry} from '../../registry-client/tar.js'
import type {ImageExporter} from '../../system/docker-images.js'

/** One image to put into one registry, under one or more repository tags. */
export interface UploadJob {
  /** The image as inspected: config digest and uncompressed layer digests, base first. */
  id: string
  layers: string[]
  /** Repository and tag of each target, all in this registry. */
  tags: {repository: string; tag: string}[]
  /**
   * Layers the registry may hold for other images (earlier builds at these tags): diff_id → blob,
   * as those images' configs claim; each is checked before it stands for a layer (see vouched).
   */
  known: Map<string, KnownLayer>
}

/** A layer the registry holds, and a repository that holds it. */
export interface KnownLayer {
  blob: Descriptor
  repository: string
}

/** What the run learned about one registry, shared by every job that pushes there. */
export class RegistryMemory {
  /** Layers in the registry by diff_id, as sent or found. */
  readonly layers = new Map<string, Descriptor>()
  /** Repositories known to hold each blob digest. */
  readonly holders = new Map<string, Set<string>>()
  /** Layer uploads in progress, by diff_id or archive entry: what they will be known as. */
  readonly inFlight = new Map<string, Promise<string | undefined>>()
  /** Archive entry names of layers already read (`<v1 id>/layer.tar` before Docker 25): their diff_id. */
  readonly entries = new Map<string, string>()
  /** Claims checked (`<diff_id> <blob digest>`): whether the blob really is that layer. */
  readonly checked = new Map<string, Promise<boolean>>()

  /**
   * @param compression `none`: every layer is sent as is (a registry on this host); `gzip`: gzip
   *   where its first bytes show it pays.
   */
  constructor(
    readonly client: RegistryClient,
    readonly compression: 'gzip' | 'none' = 'gzip'
  ) {}

  held(digest: string, repo: string): void {
    const set = this.holders.get(digest) ?? new Set<string>()
    set.add(repo)
    this.holders.set(digest, set)
  }
}

/** Whether the repository holds the blob, linking it from another repository when one does. */
async function ensureBlob(mem: RegistryMemory, repo: string, digest: string): Promise<boolean> {
  const holders = mem.holders.get(digest)
  if (holders?.has(repo)) return true
  if ((await mem.client.blobSize(repo, digest)) !== undefined) {
    mem.held(digest, repo)
    return true
  }
  for (const from of holders ?? []) {
    if (await mem.client.mount(repo, digest, from)) {
      mem.held(digest, repo)
      return true
    }
  }
  return false
}

/**
 * Whether a blob another image's config names for a diff_id really is that layer. The config is
 * a claim whoever pushed that tag made: a blob is linked for the layer only once its bytes, read
 * back and hashed, are the layer (once per run and claim). Anything else sends the layer.
 */
function vouched(mem: RegistryMemory, diffId: string, claim: KnownLayer): Promise<boolean> {
  const key = `${diffId} ${claim.blob.digest}`
  let p = mem.checked.get(key)
  if (!p) {
    p = mem.client.servedLayer(claim.repository, claim.blob).then(
      served => {
        // A manifest that lists the wrong size for the right bytes does not pull: checked too.
        const lie =
          served.diffId !== diffId
            ? 'holds another layer'
            : served.size !== claim.blob.size
              ? `is ${served.size} bytes, not the ${claim.blob.size} that image says`
              : undefined
        if (lie) {
          core.warning(
            `${claim.repository}: the blob ${claim.blob.digest} an image there names as layer ${diffId} ${lie}; the layer is sent instead`
          )
        }
        return lie === undefined
      },
      (e: unknown) => {
        core.debug(`${claim.blob.digest} could not be checked: ${errorMessage(e)}`)
        return false
      }
    )
    mem.checked.set(key, p)
  }
  return p
}

/**
 * The blob a layer is known as, when the registry has it in (or can link it into) the repository;
 * `askRegistry` false: from what this run knows alone (the registry was asked a moment before).
 */
async function knownLayer(
  mem: RegistryMemory,
  job: UploadJob,
  repo: string,
  diffId: string,
  askRegistry = true
): Promise<Descriptor | undefined> {
  const claim = job.known.get(diffId)
  // A blob this run sent is the layer it hashed; one only a config names is checked first.
  const ours = mem.layers.get(diffId)
  const elsewhere = !ours && claim && (await vouched(mem, diffId, claim)) ? claim : undefined
  if (elsewhere) mem.held(elsewhere.blob.digest, elsewhere.repository)
  const candidates = [ours, elsewhere?.blob].filter((d): d is Descriptor => d !== undefined)
  for (const d of candidates) if (await ensureBlob(mem, repo, d.digest)) return d
  if (!askRegistry) return undefined
  // A layer sent as is carries its diff_id as its digest.
  const size = await mem.client.blobSize(repo, diffId)
  // A manifest must list the blob's size: without one the layer is sent.
  if (size === undefined || size < 0) return undefined
  const d = {mediaType: MEDIA.layerTar, digest: diffId, size}
  mem.held(diffId, repo)
  mem.layers.set(diffId, d)
  return d
}

/** The layers the repository already holds (or can link), before anything is read. */
async function survey(
  mem: RegistryMemory,
  job: UploadJob,
  repo: string
): Promise<Map<string, Descriptor>> {
  const layers = new Map<string, Descriptor>()
  const unique = [...new Set(job.layers)]
  const found = await Promise.all(unique.map(async id => knownLayer(mem, job, repo, id)))
  unique.forEach((id, i) => {
    const d = found[i]
    if (d) layers.set(id, d)
  })
  return layers
}

async function bytesOf(entry: TarEntry): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const p of entry.body()) parts.push(p)
  return Buffer.concat(parts)
}

/** Counters of one attempt, for the log. */
export interface Sent {
  layers: number
  gzipped: number
  bytes: number
}

/** A layer whose bytes are all read and handed over; `landed` settles once the registry has it. */
interface Handed {
  landed: Promise<{diffId: string; blob: Descriptor}>
}

/**
 * Sends one layer entry: judged on its first bytes, encoded, streamed. Returns once the entry is
 * read, so the next one streams while the registry still answers for this one. `claimed`: the
 * diff_id is only what the export's folder json implies, checked here (gzip: hashed) or by the
 * registry (as is: the blob's digest).
 */
async function sendLayer(
  mem: RegistryMemory,
  repo: string,
  entry: TarEntry,
  knownDiffId: string | undefined,
  claimed: boolean,
  sent: Sent
): Promise<Handed> {
  const body = entry.body()
  const head: Buffer[] = []
  let headBytes = 0
  while (mem.compression === 'gzip' && headBytes < SAMPLE_BYTES) {
    const r = await body.next()
    if (r.done === true) break
    head.push(r.value)
    headBytes += r.value.length
  }
  const mode = mem.compression === 'none' ? 'none' : await judgeCompression(Buffer.concat(head))
  let upload: BlobUpload | undefined
  try {
    // As is, under a diff_id known before the first byte: one PUT of the entry's size.
    upload =
      mode === 'none' && knownDiffId !== undefined
        ? await mem.client.openUpload(repo, knownDiffId, entry.size)
        : await mem.client.openUpload(repo)
    const u = upload
    // Sent as is, the blob's digest is the diff_id: under a known one the registry alone hashes
    // the bytes (and refuses them if they differ); otherwise the upload hashes them, once.
    const hashInput = mode === 'gzip' && (knownDiffId === undefined || claimed)
    const encoder = new LayerEncoder(mode, b => u.write(b), hashInput)
    for (const part of head) await encoder.write(part)
    for await (const part of body) await encoder.write(part)
    const input = await encoder.end()
    const landed = upload.finish().then(blob => {
      sent.layers++
      if (mode === 'gzip') sent.gzipped++
      sent.bytes += blob.size
      return {
        // What was hashed is the layer, whatever the export's folders claimed.
        diffId: input.diffId ?? knownDiffId ?? blob.digest,
        blob: {mediaType: layerMediaType(mode), digest: blob.digest, size: blob.size}
      }
    })
    landed.catch(() => upload?.abort())
    return {landed}
  } catch (e) {
    upload?.abort()
    throw e
  }
}

/**
 * Where each layer folder of a Docker 20.10 export stands in the image's chain of layers (its
 * index in the config's diff_ids), as far as the folders read so far tell.
 */
type Chain = Map<string, number>

/** A layer folder's `json` in a Docker 20.10 export: it names the folder below it as `parent`. */
const V1_JSON = /^([0-9a-f]{64})\/json$/
/** More than a folder's `json` ever holds (the image's config and a few ids): not read. */
const V1_JSON_MAX_BYTES = 1 << 20

/**
 * Places a layer folder in the chain from its `json`: the base (no parent) is the first diff_id,
 * a folder above a placed one the next. Docker writes the folders in name order, so one may come
 * before the folder below it: it stays unplaced, and its layer is hashed as it is read.
 */
export function placeFolder(chain: Chain, folder: string, json: Buffer): void {
  let v1: {id?: unknown; parent?: unknown}
  try {
    v1 = JSON.parse(json.toString('utf8')) as typeof v1
  } catch {
    return
  }
  // Docker writes each folder's own id in its json: anything else is not one of its folders.
  if (v1 === null || typeof v1 !== 'object' || v1.id !== folder) return
  const {parent} = v1
  const below =
    parent === undefined || parent === ''
      ? -1
      : typeof parent === 'string'
        ? chain.get(parent)
        : undefined
  if (below !== undefined) chain.set(folder, below + 1)
}

/**
 * The diff_id an archive entry is known as before it is read: Docker 25 names blobs by digest; a
 * Docker 20.10 folder's place in the chain gives its diff_id (a claim the registry checks: the
 * layer goes under that digest, which it verifies).
 */
function entryDiffId(
  mem: RegistryMemory,
  job: UploadJob,
  name: string,
  chain: Chain
): string | undefined {
  const named = blobPathDigest(name)
  if (named !== undefined) return job.layers.includes(named) ? named : undefined
  const place = name.endsWith('/layer.tar')
    ? chain.get(name.slice(0, -'/layer.tar'.length))
    : undefined
  return mem.entries.get(name) ?? (place === undefined ? undefined : job.layers[place])
}

/** A layer of the archive: `<v1 id>/layer.tar` before Docker 25, a blob named by a diff_id after. */
function isLayerEntry(job: UploadJob, name: string): boolean {
  return name.endsWith('/layer.tar') || job.layers.includes(blobPathDigest(name) ?? '')
}

/**
 * A layer of the export in the repository: linked or skipped when the registry has it, else sent.
 * Resolves once the entry is read; `done` settles with its diff_id once the registry has it.
 */
async function placeLayer(
  mem: RegistryMemory,
  job: UploadJob,
  repo: string,
  entry: TarEntry,
  have: Map<string, Descriptor>,
  sent: Sent,
  chain: Chain
): Promise<{done: Promise<string | undefined>}> {
  const id = entryDiffId(mem, job, entry.name, chain)
  if (id !== undefined && have.has(id)) return {done: Promise.resolve(id)}
  // The survey asked the registry for every layer of the job just before the export: what this
  // run has sent since is in memory, so the registry is not asked again.
  const known = id === undefined ? undefined : await knownLayer(mem, job, repo, id, false)
  if (id !== undefined && known) {
    have.set(id, known)
    return {done: Promise.resolve(id)}
  }
  // A diff_id neither in the entry's name (Docker 25) nor learned this run is the chain's claim.
  const claimed = blobPathDigest(entry.name) === undefined && !mem.entries.has(entry.name)
  const {landed} = await sendLayer(mem, repo, entry, id, claimed, sent)
  const done = landed.then(({diffId, blob}) => {
    if (!job.layers.includes(diffId)) {
      throw new HostError(
        `the export of ${job.id} holds a layer (${diffId}) its config does not list`
      )
    }
    mem.entries.set(entry.name, diffId)
    mem.layers.set(diffId, blob)
    mem.held(blob.digest, repo)
    have.set(diffId, blob)
    return diffId
  })
  return {done}
}

/**
 * One layer entry of the export, placed by one job at a time (jobs sharing a layer send it once).
 * Resolves once the entry is read, with what settles when the registry has the layer.
 */
async function layerEntry(
  mem: RegistryMemory,
  job: UploadJob,
  repo: string,
  entry: TarEntry,
  have: Map<string, Descriptor>,
  sent: Sent,
  chain: Chain
): Promise<{done: Promise<unknown>}> {
  const key = entryDiffId(mem, job, entry.name, chain) ?? entry.name
  for (let other = mem.inFlight.get(key); other; other = mem.inFlight.get(key)) {
    await other.catch(() => undefined)
  }
  // Nothing awaits between the last look and this claim.
  let settle: (p: Promise<string | undefined>) => void = () => undefined
  const claim = new Promise<string | undefined>(resolve => (settle = resolve))
  claim.catch(() => undefined)
  mem.inFlight.set(key, claim)
  const release = (): void => {
    if (mem.inFlight.get(key) === claim) mem.inFlight.delete(key)
  }
  try {
    const {done} = await placeLayer(mem, job, repo, entry, have, sent, chain)
    settle(done)
    done.then(release, release)
    return {done}
  } catch (e) {
    settle(Promise.reject(e instanceof Error ? e : new Error(String(e))))
    release()
    throw e
  }
}

/**
 * Reads the image from the daemon once (a `docker save` stream), sending the layers `have` lacks,
 * and hands its config to `onConfig` as soon as it is read; resolves once the registry has it all.
 */
async function exportImage(
  mem: RegistryMemory,
  job: UploadJob,
  repo: string,
  have: Map<string, Descriptor>,
  exporter: ImageExporter,
  sent: Sent,
  onConfig: (config: Buffer) => Promise<void>
): Promise<void> {
  const hex = job.id.replace(/^sha256:/, '')
  const configNames = new Set([`${hex}.json`, `blobs/sha256/${hex}`])
  const cmd = await exporter(job.id)
  // What the registry still answers for while the stream goes on.
  const landing: Promise<unknown>[] = []
  const wait = (p: Promise<unknown>): void => {
    p.catch(() => undefined)
    landing.push(p)
  }
  let config = false
  const chain: Chain = new Map()
  try {
    for await (const entry of tarEntries(cmd.stdout)) {
      const folder = V1_JSON.exec(entry.name)?.[1]
      if (configNames.has(entry.name)) {
        config = true
        wait(onConfig(await bytesOf(entry)))
      } else if (folder !== undefined && entry.size <= V1_JSON_MAX_BYTES) {
        placeFolder(chain, folder, await bytesOf(entry))
      } else if (isLayerEntry(job, entry.name)) {
        wait((await layerEntry(mem, job, repo, entry, have, sent, chain)).done)
      }
    }
  } catch (e) {
    cmd.kill()
    // A registry's failure (or ours) is the cause: the export only ended because it was stopped.
    if (e instanceof HostError) throw e
    const r = await cmd.done.catch(() => undefined)
    const why = r?.stderr.trim() ? r.stderr : errorMessage(e)
    throw new HostError(`the export of ${job.id} from Docker failed: ${tailLines(why, 3)}`)
  }
  const r = await cmd.done
  if (r.exitCode !== 0) {
    throw new HostError(
      `the export of ${job.id} from Docker failed (exit code ${r.exitCode}): ${tailLines(r.stderr, 3)}`
    )
  }
  await Promise.all(landing)
  if (!config) throw new HostError(`the export of ${job.id} holds no image config`)
}

/** Puts config and layers into one repository: what it lacks is read from the daemon and sent. */
async function fillRepository(
  mem: RegistryMemory,
  job: UploadJob,
  repo: string,
  exporter: ImageExporter,
  sent: Sent
): Promise<{layers: Map<string, Descriptor>; configSize: number}> {
  const [have, held] = await Promise.all([
    survey(mem, job, repo),
    mem.client.blobSize(repo, job.id)
  ])
  let configSize = held ?? -1
  if (have.size === new Set(job.layers).size && configSize >= 0) {
    mem.held(job.id, repo)
    return {layers: have, configSize}
  }
  await exportImage(mem, job, repo, have, exporter, sent, async config => {
    if (sha256Digest(config) !== job.id) {
      throw new HostError(`the export of ${job.id} holds a config of another digest`)
    }
    if (configSize < 0) await mem.client.putBlob(repo, job.id, config)
    mem.held(job.id, repo)
    configSize = config.length
  })
  const missing = job.layers.filter(id => !have.has(id))
  if (missing.length > 0) {
    throw new HostError(`the export of ${job.id} lacks the layer(s) ${missing.join(', ')}`)
  }
  return {layers: have, configSize}
}

/** Links every blob of the manifest into another repository, sending what cannot be linked. */
async function copyInto(
  mem: RegistryMemory,
  job: UploadJob,
  repo: string,
  digests: string[],
  exporter: ImageExporter,
  sent: Sent
): Promise<void> {
  const linked = await Promise.all(digests.map(async d => ensureBlob(mem, repo, d)))
  if (linked.every(Boolean)) return
  // The registry refused to link: send from the daemon (the encoding gives the same bytes).
  await fillRepository(mem, {...job, known: new Map()}, repo, exporter, sent)
  const missing = digests.filter(d => !mem.holders.get(d)?.has(repo))
  if (missing.length > 0) {
    throw new HostError(`${repo} lacks ${missing.join(', ')} after sending the image`)
  }
}

/**
 * Pushes one image to every tag of the job; returns the manifest's digest and the image's size in
 * the registry. Another attempt after a failure sends only what the registry still lacks.
 */
export async function uploadImage(
  mem: RegistryMemory,
  job: UploadJob,
  exporter: ImageExporter,
  sent: Sent
): Promise<{digest: string; size: number}> {
  const [first, ...others] = [...new Set(job.tags.map(t => t.repository))]
  const filled = await fillRepository(mem, job, first, exporter, sent)
  const layers = job.layers.map(id => filled.layers.get(id) as Descriptor)
  const config = {digest: job.id, size: filled.configSize}
  const manifest = imageManifest(config, layers)
  const digests = [...new Set([job.id, ...layers.map(l => l.digest)])]
  for (const repo of others) await copyInto(mem, job, repo, digests, exporter, sent)
  const digest = sha256Digest(manifest)
  for (const t of job.tags) {
    const answered = await mem.client.putManifest(t.repository, t.tag, manifest, MEDIA.ociManifest)
    if (answered !== digest) {
      throw new HostError(
        `${t.repository}:${t.tag}: the registry answered ${answered} for a manifest of digest ${digest}`
      )
    }
  }
  const sizes = new Map([config, ...layers].map(d => [d.digest, d.size]))
  return {digest, size: [...sizes.values()].reduce((a, b) => a + b, 0)}
}
