/**
 * The disk plan (pure): what may be removed to bring free space on Docker's data root up to
 * min-free-space, in the order it is removed, and what is kept and why. Order: stopped containers
 * and dangling images older than prune-age; build cache over the cap; unused images, least
 * recently used first. Never: anything a running container uses, the action's registries, images
 * with keep-label, this job's images to push (named by tag, digest or ID), volumes. Images are
 * removed by ID, never by a tag that another job may have moved meanwhile.
 */
import type {PhasePlan, Step} from '../pipeline.js'
import type {DiskSettings, LabelMatch} from './inputs.js'
import type {ContainerFact, ImageFact} from './inventory.js'
import {formatBytes} from '../../docker/sizes.js'

/** What Docker holds, read only when free space is short. */
export interface Inventory {
  containers: ContainerFact[]
  images: ImageFact[]
  buildCache: number
  volumes: number
}

/** What detection found. */
export interface DiskFacts {
  /** min-free-space is set. */
  wanted: boolean
  /** Docker answered (a dry run may come before it is installed). */
  dockerUp: boolean
  dataRoot: string
  free: number
  /** Milliseconds since the epoch, when the facts were read. */
  now: number
  /** Read only when free space is short. */
  inventory?: Inventory
}

/** Which rule allows a removal: 1 stopped or dangling, 2 build cache over the cap, 3 unused. */
export type Tier = 1 | 2 | 3

/** One removal, in order: a container, an image (with the images built on it), or build cache. */
export type Removal = {tier: Tier; label: string; bytes: number} & (
  | {kind: 'container'; id: string}
  | {kind: 'image'; ids: string[]}
  | {kind: 'build-cache'; keep: number}
)

/** Space the rules keep, by reason. */
export interface Kept {
  reason: string
  count: number
  bytes: number
}

/** The plan: removals in order (applied until enough is free), and what is kept. */
export interface DiskPlan extends PhasePlan {
  facts: DiskFacts
  minFree: number
  removals: Removal[]
  kept: Kept[]
}

const STOPPED = new Set(['exited', 'created', 'dead'])

function hasLabel(labels: Record<string, string>, match: LabelMatch | undefined): boolean {
  if (!match || !(match.key in labels)) return false
  return match.value === undefined || labels[match.key] === match.value
}

/** `registry:3`, `docker.io/library/registry:3` and `library/registry:3` name one image. */
export function normalRef(ref: string): string {
  const withTag = /:[^/]+$/.test(ref) || ref.includes('@') ? ref : `${ref}:latest`
  return withTag.replace(/^docker\.io\//, '').replace(/^library\//, '')
}

/** Docker's image ID, full (`sha256:…`) or short (12 or more hex digits), as `docker rmi` takes it. */
const IMAGE_ID = /^(?:sha256:)?([0-9a-f]{12,64})$/

/**
 * Whether `ref` (a source of the `images` input) names this image to Docker: by ID (full or
 * short), by digest (one of its RepoDigests; a tag beside the digest does not count, as for
 * Docker), or by tag.
 */
export function namesImage(ref: string, image: ImageFact): boolean {
  const id = IMAGE_ID.exec(ref)?.[1]
  if (id !== undefined && image.id.startsWith(`sha256:${id}`)) return true
  const at = ref.indexOf('@')
  if (at >= 0) {
    const byDigest = normalRef(ref.slice(0, at).replace(/:[^/]*$/, '') + ref.slice(at))
    return image.digests.some(d => normalRef(d) === byDigest)
  }
  return image.tags.some(t => normalRef(t) === normalRef(ref))
}

/** Named by no tag and no digest: what Docker calls dangling. */
const dangling = (i: ImageFact): boolean => i.tags.length === 0 && i.digests.length === 0

/** The settings and facts every rule reads. */
interface Rules {
  s: DiskSettings
  now: number
  inv: Inventory
}

const old = (r: Rules, t: number): boolean => r.now - t >= r.s.pruneAge.seconds * 1000

function removableContainer(r: Rules, c: ContainerFact): boolean {
  return (
    STOPPED.has(c.state) &&
    !(r.s.managedLabel in c.labels) &&
    !hasLabel(c.labels, r.s.keepLabel) &&
    old(r, c.finished || c.created)
  )
}

/** When an image was last used: built, tagged, or a container made, started or stopped on it. */
function lastUsed(r: Rules, image: ImageFact): number {
  const uses = r.inv.containers
    .filter(c => c.image === image.id)
    .flatMap(c => [c.created, c.started, c.finished])
  return Math.max(image.created, image.lastTagged, ...uses)
}

/** The images a person sees (tagged or dangling), not the hidden layers of classic builds. */
function topLevel(images: ImageFact[]): ImageFact[] {
  const parents = new Set(images.map(i => i.parent).filter(Boolean))
  return images.filter(i => !dangling(i) || !parents.has(i.id))
}

/** Each image's ancestors (parent, its parent, …), from classic builds' parent links. */
function ancestry(images: ImageFact[]): Map<string, string[]> {
  const parent = new Map(images.map(i => [i.id, i.parent]))
  const out = new Map<string, string[]>()
  for (const i of images) {
    const chain: string[] = []
    for (let p = i.parent; p && !chain.includes(p); p = parent.get(p) ?? '') chain.push(p)
    out.set(i.id, chain)
  }
  return out
}

/** Why an image is kept, or undefined when the rules allow removing it. */
function keptBecause(
  r: Rules,
  image: ImageFact,
  keptContainers: ContainerFact[]
): string | undefined {
  const users = r.inv.containers.filter(c => c.image === image.id)
  if (users.some(c => !STOPPED.has(c.state))) return 'images of running containers'
  if (users.some(c => r.s.managedLabel in c.labels)) return "the action's registry images"
  const named = r.s.keepImages.find(k => namesImage(k.ref, image))
  if (named) return named.why
  if (hasLabel(image.labels, r.s.keepLabel)) return `images labelled ${r.s.keepLabel?.key}`
  if (users.some(c => keptContainers.includes(c))) return 'images of stopped containers kept'
  if (!old(r, lastUsed(r, image))) return `images used within prune-age (${r.s.pruneAge.text})`
  return undefined
}

/** Every top-level image's reason to be kept; an image another kept image is built on is kept too. */
function keptImages(r: Rules, images: ImageFact[], kept: ContainerFact[]): Map<string, string> {
  const reasons = new Map<string, string>()
  for (const i of images) {
    const why = keptBecause(r, i, kept)
    if (why) reasons.set(i.id, why)
  }
  const up = ancestry(r.inv.images)
  for (const id of [...reasons.keys()]) {
    for (const a of up.get(id) ?? [])
      if (!reasons.has(a)) reasons.set(a, 'base layers of kept images')
  }
  return reasons
}

const day = (t: number): string => new Date(t).toISOString().slice(0, 16).replace('T', ' ')

function imageLabel(r: Rules, i: ImageFact): string {
  const names = [...i.tags, ...(i.tags.length > 0 ? [] : i.digests)]
  return `${names.length > 0 ? names.join(', ') : `dangling ${i.id.slice(7, 19)}`} (${formatBytes(i.size)}, last used ${day(lastUsed(r, i))})`
}

/** Unused images, least recently used first; an image goes after the images built on it. */
function imageRemovals(r: Rules, candidates: ImageFact[], tier: Tier): Removal[] {
  const up = ancestry(r.inv.images)
  const below = (id: string) => candidates.filter(c => up.get(c.id)?.includes(id))
  const recency = (i: ImageFact) =>
    Math.max(lastUsed(r, i), ...below(i.id).map(c => lastUsed(r, c)))
  const done = new Set<string>()
  const out: Removal[] = []
  for (const i of [...candidates].sort((a, b) => recency(a) - recency(b))) {
    if (done.has(i.id)) continue
    const deepestFirst = (a: ImageFact, b: ImageFact) =>
      (up.get(b.id)?.length ?? 0) - (up.get(a.id)?.length ?? 0)
    const unit = [
      ...below(i.id)
        .filter(c => !done.has(c.id))
        .sort(deepestFirst),
      i
    ]
    for (const u of unit) done.add(u.id)
    out.push({
      tier,
      kind: 'image',
      ids: unit.map(u => u.id),
      label: unit.map(u => imageLabel(r, u)).join(' + '),
      bytes: unit.reduce((sum, u) => sum + u.size, 0)
    })
  }
  return out
}

/** Every removal the rules allow, in order, and the space kept by each reason. */
export function removalsAndKept(
  s: DiskSettings,
  inv: Inventory,
  now: number
): {removals: Removal[]; kept: Kept[]} {
  const r: Rules = {s, now, inv}
  const stopped = inv.containers.filter(c => removableContainer(r, c))
  stopped.sort((a, b) => (a.finished || a.created) - (b.finished || b.created))
  const keptContainers = inv.containers.filter(c => !stopped.includes(c))
  const images = topLevel(inv.images)
  const reasons = keptImages(r, images, keptContainers)
  const free = images.filter(i => !reasons.has(i.id))
  const cache: Removal[] =
    inv.buildCache > s.buildCacheCap
      ? [
          {
            tier: 2,
            kind: 'build-cache',
            keep: s.buildCacheCap,
            label: `build cache over the ${formatBytes(s.buildCacheCap)} cap`,
            bytes: inv.buildCache - s.buildCacheCap
          }
        ]
      : []
  const removals: Removal[] = [
    ...stopped.map((c): Removal => ({
      tier: 1,
      kind: 'container',
      id: c.id,
      label: `container ${c.name} (${formatBytes(c.size)}, stopped ${day(c.finished || c.created)})`,
      bytes: c.size
    })),
    ...imageRemovals(r, free.filter(dangling), 1),
    ...cache,
    ...imageRemovals(
      r,
      free.filter(i => !dangling(i)),
      3
    )
  ]
  return {removals, kept: keptSpace(r, images, reasons, keptContainers)}
}

function keptSpace(
  r: Rules,
  images: ImageFact[],
  reasons: Map<string, string>,
  containers: ContainerFact[]
): Kept[] {
  const kept = new Map<string, Kept>()
  const add = (reason: string, bytes: number, count = 1) => {
    const k = kept.get(reason) ?? {reason, count: 0, bytes: 0}
    kept.set(reason, {reason, count: k.count + count, bytes: k.bytes + bytes})
  }
  for (const i of images) {
    const why = reasons.get(i.id)
    if (why) add(why, i.size)
  }
  for (const c of containers)
    add(STOPPED.has(c.state) ? 'stopped containers kept' : 'running containers', c.size)
  add('volumes (never pruned)', r.inv.volumes, 0)
  add(
    `build cache up to the ${formatBytes(r.s.buildCacheCap)} cap`,
    Math.min(r.inv.buildCache, r.s.buildCacheCap),
    0
  )
  return [...kept.values()].filter(k => k.bytes > 0)
}

const KIND_STEP: Record<Removal['kind'], string> = {
  container: 'remove stopped containers',
  image: 'remove images',
  'build-cache': 'prune build cache'
}

/** The removals as steps for the log: one per kind, in order, each listing its items. */
function steps(removals: Removal[], missing: number): Step[] {
  const out: Step[] = []
  for (const r of removals) {
    const last = out.at(-1)
    const head = `${KIND_STEP[r.kind]} until ${formatBytes(missing)} more are free`
    if (last?.description.startsWith(KIND_STEP[r.kind])) last.description += `\n    ${r.label}`
    else out.push({description: `${head}:\n    ${r.label}`})
  }
  return out
}

/** What to remove, in order (pure); no step when free space already meets min-free-space. */
export function planDisk(facts: DiskFacts, s: DiskSettings): DiskPlan {
  const minFree = s.minFreeSpace ?? 0
  const base = {facts, minFree, removals: [], kept: [], warnings: [], steps: []}
  if (!facts.wanted) return {...base, found: 'min-free-space not set: no check'}
  if (!facts.dockerUp)
    return {...base, found: 'Docker does not answer yet: its data root is checked once it runs'}
  const free = `${formatBytes(facts.free)} free on ${facts.dataRoot} (min-free-space ${formatBytes(minFree)})`
  if (facts.free >= minFree || !facts.inventory) return {...base, found: free}
  const {removals, kept} = removalsAndKept(s, facts.inventory, facts.now)
  const missing = minFree - facts.free
  const reachable = removals.reduce((sum, r) => sum + r.bytes, 0)
  return {
    ...base,
    removals,
    kept,
    found: `${free}: ${formatBytes(missing)} missing; the pruning rules allow about ${formatBytes(reachable)}`,
    steps: steps(removals, missing)
  }
}
