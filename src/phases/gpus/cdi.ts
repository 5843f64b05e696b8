/** CDI names of leased GPUs, and whether Docker can inject them (reads docker's /info and the spec folders). */
import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import type {CommandRunner} from '../../exec/runner.js'
import {readFileMaybe} from '../../system/files.js'
import {openEngineApi} from '../../system/engine-api.js'

/** The CDI kind of NVIDIA's GPUs, as `nvidia-ctk cdi generate` names them. */
export const NVIDIA_GPU_KIND = 'nvidia.com/gpu'

/** `nvidia.com/gpu=<uuid>` for each GPU (pure): nvidia-ctk names every GPU by index and by UUID. */
export function cdiNames(uuids: readonly string[]): string[] {
  return uuids.map(u => `${NVIDIA_GPU_KIND}=${u}`)
}

/** A CDI spec's text declares NVIDIA's GPU kind (YAML or JSON) (pure). */
export function declaresNvidiaGpus(spec: string): boolean {
  return /(?:^|[{,])\s*"?kind"?\s*:\s*["']?nvidia\.com\/gpu["']?\s*(?:[,}]|$)/m.test(spec)
}

/**
 * Docker has CDI on (its /info lists CDI spec folders: Docker 25 or later with features.cdi) and
 * one of those folders holds a spec of NVIDIA's GPUs. False when Docker does not answer.
 */
export async function nvidiaCdiReady(
  runner: CommandRunner,
  socket: string | undefined
): Promise<boolean> {
  const api = await openEngineApi(socket).catch(() => undefined)
  const info = await api?.json<{CDISpecDirs?: string[] | null}>('/info').catch(() => undefined)
  for (const dir of info?.CDISpecDirs ?? []) {
    const names = await fs.readdir(dir).catch(() => [] as string[])
    for (const name of names.filter(n => /\.(ya?ml|json)$/.test(n))) {
      const text = await readFileMaybe(runner, path.join(dir, name))
      if (text !== undefined && declaresNvidiaGpus(text)) return true
    }
  }
  return false
}
