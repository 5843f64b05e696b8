/**
 * The registry API push strategy (Docker's classic image store): one image per registry at a time
 * through the uploader, each read once from the daemon (begun ahead of its turn), layers the
 * registry holds for earlier builds at the same tags reused once checked.
 */
import * as core from '@actions/core'
import {errorMessage} from '../../errors.js'
import {configDiffIds, portableLayer} from '../../registry-client/manifest.js'
import {retrying} from '../../registry-client/retry.js'
import {
  cliExporter,
  engineExporter,
  ReadAhead,
  tagImage,
  type ImageExporter
} from '../../system/docker-images.js'
import type {PushTarget} from './image-list.js'
import {COMPRESSION_WORDS, type LocalImage, type PushPlan} from './plan.js'
import {failed, type PushResult} from './push-result.js'
import {confirm} from './registries.js'
import type {PushContext, PushStrategy} from './strategy.js'
import {
  RegistryMemory,
  uploadImage,
  type KnownLayer,
  type Sent,
  type UploadJob
} from './uploader.js'

/** Images are exported ahead of their turn up to this many bytes in all (the daemon holds a copy meanwhile). */
const READ_AHEAD_BYTES = 1 << 30

/** One image for one registry: the targets it goes to there. */
interface Group {
  image: LocalImage
  registry: string
  targets: PushTarget[]
}

function groups(p: PushPlan): Group[] {
  const byKey = new Map<string, Group>()
  for (const t of p.todo) {
    const image = p.facts.locals.get(t.source) as LocalImage
    const key = `${image.id} ${t.registry}`
    const g = byKey.get(key) ?? {image, registry: t.registry, targets: []}
    g.targets.push(t)
    byKey.set(key, g)
  }
  return [...byKey.values()]
}

/** What one run of this strategy shares: per-registry memory, configs read, exports. */
interface Run {
  memory(registry: string): Promise<RegistryMemory>
  configs(registry: string, repository: string, config: string): Promise<string[]>
  exporter: ImageExporter
}

/**
 * Layers the registry may hold for the images the targets' tags held before (earlier builds,
 * other images sharing a base), as their configs claim: diff_id → blob, and a repository holding
 * it. Whoever pushed those tags wrote the claims: the uploader checks each before linking it.
 */
async function knownLayers(p: PushPlan, g: Group, run: Run): Promise<Map<string, KnownLayer>> {
  const known = new Map<string, KnownLayer>()
  for (const t of p.facts.targets.filter(x => x.registry === g.registry)) {
    const held = p.facts.remote.get(t.target)
    if (!held?.config || held.layers.length === 0) continue
    try {
      const ids = await run.configs(t.registry, t.repository, held.config)
      if (ids.length !== held.layers.length) continue
      ids.forEach((id, i) => {
        // A layer an older engine could not pull is sent again rather than linked.
        const blob = portableLayer(held.layers[i])
        if (blob) known.set(id, {blob, repository: t.repository})
      })
    } catch (e) {
      core.debug(`Could not read the config ${t.target} holds: ${errorMessage(e)}`)
    }
  }
  return known
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`
}

/** Pushes one image to its targets in one registry through the API, retrying transient failures. */
async function pushOne(ctx: PushContext, p: PushPlan, g: Group, run: Run): Promise<PushResult[]> {
  let ready: {mem: RegistryMemory; job: UploadJob} | undefined
  const names = g.targets.map(t => t.target)
  const pushed = await retrying(ctx.inputs.pushRetries, names, async attempt => {
    const sent: Sent = {layers: 0, gzipped: 0, bytes: 0}
    // In the retried work: a target that cannot be tagged, or a registry that cannot be reached,
    // fails this image alone (the latter is retried), never the others.
    if (!ready) {
      // The target's name on the local image too, as docker push gives it (later steps may use it).
      for (const t of g.targets) await tagImage(ctx.runner, p.facts.engine, t.source, t.target)
      const mem = await run.memory(g.registry)
      const job: UploadJob = {
        id: g.image.id,
        layers: g.image.layers,
        tags: g.targets.map(t => ({repository: t.repository, tag: t.tag})),
        known: await knownLayers(p, g, run)
      }
      ready = {mem, job}
    }
    const {mem, job} = ready
    const r = await uploadImage(mem, job, run.exporter, sent)
    const sizes = await Promise.all(
      g.targets.map(async t => confirm(p.facts.registries, t, r.digest))
    )
    const reused = new Set(job.layers).size - sent.layers
    core.info(
      `${g.targets[0].source}: ${sent.layers} layer(s) sent (${sent.gzipped} as gzip, ${mb(sent.bytes)}), ${Math.max(0, reused)} already in ${g.registry}`
    )
    return g.targets.map((t, i): PushResult => ({
      source: t.source,
      target: t.target,
      digest: r.digest,
      size: sizes[i],
      status: 'pushed',
      attempts: attempt
    }))
  })
  if (pushed.ok) return pushed.value
  return g.targets.map(t => failed(t, errorMessage(pushed.error), pushed.attempts))
}

/** Pushes the plan's images through the registry API, one image and registry per worker. */
export const registryApiPush: PushStrategy = async (ctx, p, pool) => {
  const memories = new Map<string, Promise<RegistryMemory>>()
  const memory = (registry: string): Promise<RegistryMemory> => {
    let m = memories.get(registry)
    if (!m) {
      const how = p.compression.find(c => c.registry === registry)
      if (how)
        core.info(`Layers to ${registry}: ${COMPRESSION_WORDS[how.compression]} (${how.why})`)
      m = p.facts.registries.client(registry).then(c => new RegistryMemory(c, how?.compression))
      memories.set(registry, m)
    }
    return m
  }
  const read = new Map<string, Promise<string[]>>()
  const configs: Run['configs'] = (registry, repository, config) => {
    let ids = read.get(config)
    if (!ids) {
      ids = memory(registry)
        .then(async m => m.client.blob(repository, config))
        .then(b => configDiffIds(b.toString('utf8')))
      read.set(config, ids)
    }
    return ids
  }
  // The daemon's socket when this process may open it; else docker save, through sudo if need be.
  const {engine} = p.facts
  const ahead = new ReadAhead(
    engine ? engineExporter(engine) : cliExporter(ctx.runner),
    READ_AHEAD_BYTES
  )
  // An image some tag already holds needs no export; large ones would hold the daemon's disk.
  const held = new Set([...p.facts.remote.values()].map(r => r?.config))
  const readAhead = (g: Group): void => {
    if (!held.has(g.image.id)) ahead.start(g.image.id, g.image.size)
  }
  const run: Run = {memory, configs, exporter: ahead.exporter}
  // An image pushed without reading it (the registry held every layer) leaves no export behind.
  const push = async (g: Group): Promise<PushResult[]> =>
    pushOne(ctx, p, g, run).finally(() => ahead.drop(g.image.id))
  try {
    return await pool(groups(p), push, readAhead)
  } finally {
    await ahead.stop()
  }
}
