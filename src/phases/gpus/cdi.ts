/** CDI names of leased GPUs, and which Docker can inject (reads docker's /info and the spec folders). */
import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import type {CommandRunner} from '../../exec/runner.js'
import {readFileMaybe} from '../../system/files.js'
import {openEngineApi} from '../../system/engine-api.js'

/** The CDI kind of NVIDIA's GPUs, as `nvidia-ctk cdi generate` names them. */
export const NVIDIA_GPU_KIND = 'nvidia.com/gpu'

/** A CDI spec's text declares NVIDIA's GPU kind (YAML or JSON) (pure). */
export function declaresNvidiaGpus(spec: string): boolean {
  return /(?:^|[{,])\s*"?kind"?\s*:\s*["']?nvidia\.com\/gpu["']?\s*(?:[,}]|$)/m.test(spec)
}

/**
 * The device names a spec of NVIDIA's GPUs declares (pure); none for any other spec. Only devices
 * have a `name` key in a CDI spec (hooks have `hookName`).
 */
export function declaredNames(spec: string): string[] {
  if (!declaresNvidiaGpus(spec)) return []
  return [...spec.matchAll(/(?:^|[{,\s-])"?name"?\s*:\s*"?([\w.:-]+)"?/gm)].map(m => m[1])
}

/**
 * `nvidia.com/gpu=<uuid>` for each GPU the spec names by UUID, else `=<index>` where it names it
 * by index (pure): `nvidia-ctk cdi generate` names GPUs by index and by UUID from toolkit 1.15, by
 * index alone before (its --device-name-strategy default, cmd/nvidia-ctk/cdi/generate/generate.go).
 * A GPU the spec names neither way (a spec older than a GPU swap, one with only `all`) has no
 * name: `missing` lists it, for the caller to say so.
 */
export function cdiNames<G extends {index: number; uuid: string}>(
  gpus: readonly G[],
  declared: ReadonlySet<string>
): {names: string[]; missing: G[]} {
  const names: string[] = []
  const missing: G[] = []
  for (const g of gpus) {
    const name = [g.uuid, String(g.index)].find(n => declared.has(n))
    if (name === undefined) missing.push(g)
    else names.push(`${NVIDIA_GPU_KIND}=${name}`)
  }
  return {names, missing}
}

/**
 * The NVIDIA GPU names Docker can inject here: Docker has CDI on (its /info lists CDI spec
 * folders: Docker 25 or later with features.cdi) and a spec of NVIDIA's GPUs in one of those
 * folders names them. Empty when Docker does not answer, or CDI is off.
 */
export async function nvidiaCdiDevices(
  runner: CommandRunner,
  socket: string | undefined
): Promise<Set<string>> {
  const api = await openEngineApi(socket).catch(() => undefined)
  const info = await api?.json<{CDISpecDirs?: string[] | null}>('/info').catch(() => undefined)
  const names = new Set<string>()
  for (const dir of info?.CDISpecDirs ?? []) {
    const files = await fs.readdir(dir).catch(() => [] as string[])
    for (const file of files.filter(n => /\.(ya?ml|json)$/.test(n))) {
      const text = await readFileMaybe(runner, path.join(dir, file))
      for (const name of declaredNames(text ?? '')) names.add(name)
    }
  }
  return names
}
