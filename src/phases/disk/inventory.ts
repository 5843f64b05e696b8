/**
 * What Docker holds, as `docker container inspect`, `docker image inspect` and
 * `docker system df -v --format '{{json .}}'` print it (pure parsers).
 */
import {parseSize} from '../../docker/sizes.js'

/** A container, with the times that say when its image was last used. */
export interface ContainerFact {
  id: string
  name: string
  /** running, paused, restarting, removing, exited, created or dead. */
  state: string
  /** The id of its image. */
  image: string
  labels: Record<string, string>
  /** Milliseconds since the epoch; 0 when Docker says never. */
  created: number
  started: number
  finished: number
  /** Its writable layer, bytes (0 when unknown). */
  size: number
}

/** An image (tagged, dangling or an intermediate layer of a classic build). */
export interface ImageFact {
  id: string
  tags: string[]
  /** Its repository digests (`name@sha256:…`): how an image pulled by digest alone is named. */
  digests: string[]
  /** The image it was built on (classic builder only); '' when none or unknown. */
  parent: string
  created: number
  /** When a tag was last put on it (a build, a pull, docker tag); 0 when never. */
  lastTagged: number
  labels: Record<string, string>
  /** Bytes no other image shares (what removing it alone frees), or its whole size when unknown. */
  size: number
}

/** Sizes from `docker system df -v`. */
export interface DfSizes {
  images: Map<string, number>
  containers: Map<string, number>
  buildCache: number
  volumes: number
}

/** A Docker time; Docker's zero time (0001-01-01) and anything unreadable are 0. */
export function dockerTime(text: unknown): number {
  const t = typeof text === 'string' ? Date.parse(text) : NaN
  return Number.isFinite(t) && t > 0 ? t : 0
}

type Json = Record<string, unknown>
const obj = (v: unknown): Json => (v !== null && typeof v === 'object' ? (v as Json) : {})
const str = (v: unknown): string => (typeof v === 'string' ? v : '')
const labels = (v: unknown): Record<string, string> => obj(v) as Record<string, string>

/** `docker container inspect` output (a JSON array). */
export function parseContainers(json: string, sizes: DfSizes): ContainerFact[] {
  return (JSON.parse(json || '[]') as unknown[]).map(raw => {
    const c = obj(raw)
    const state = obj(c.State)
    const id = str(c.Id)
    return {
      id,
      name: str(c.Name).replace(/^\//, ''),
      state: str(state.Status),
      image: str(c.Image),
      labels: labels(obj(c.Config).Labels),
      created: dockerTime(c.Created),
      started: dockerTime(state.StartedAt),
      finished: dockerTime(state.FinishedAt),
      size: sizes.containers.get(id) ?? 0
    }
  })
}

/** `docker image inspect` output (a JSON array). */
export function parseImages(json: string, sizes: DfSizes): ImageFact[] {
  return (JSON.parse(json || '[]') as unknown[]).map(raw => {
    const i = obj(raw)
    const id = str(i.Id)
    const list = (v: unknown): string[] =>
      Array.isArray(v) ? v.filter((t): t is string => typeof t === 'string') : []
    return {
      id,
      tags: list(i.RepoTags).filter(t => t !== '<none>:<none>'),
      digests: list(i.RepoDigests).filter(d => !d.startsWith('<none>@')),
      parent: str(i.Parent),
      created: dockerTime(i.Created),
      lastTagged: dockerTime(obj(i.Metadata).LastTagTime),
      labels: labels(obj(i.Config).Labels),
      size: sizes.images.get(id) ?? (typeof i.Size === 'number' ? i.Size : 0)
    }
  })
}

const bytes = (v: unknown): number => parseSize(str(v)) ?? 0

/** `docker system df -v --format '{{json .}}'`: unique image sizes, container sizes, totals. */
export function parseDfVerbose(json: string): DfSizes {
  const df = obj(JSON.parse(json || '{}'))
  const list = (v: unknown): Json[] => (Array.isArray(v) ? v.map(obj) : [])
  const images = new Map<string, number>()
  for (const i of list(df.Images)) images.set(str(i.ID), bytes(i.UniqueSize))
  const containers = new Map<string, number>()
  for (const c of list(df.Containers)) containers.set(str(c.ID), bytes(c.Size))
  return {
    images,
    containers,
    buildCache: list(df.BuildCache).reduce((sum, b) => sum + bytes(b.Size), 0),
    volumes: list(df.Volumes).reduce((sum, v) => sum + bytes(v.Size), 0)
  }
}
