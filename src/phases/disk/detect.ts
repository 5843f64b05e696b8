/** Reads Docker's data root and its free space (the Engine API, then statfs directly) and, when space is short, what Docker holds. */
import {promises as fs} from 'node:fs'
import type {CommandRunner} from '../../exec/runner.js'
import {HostError} from '../../errors.js'
import {engineGet} from '../../system/docker-api.js'
import type {PhaseContext} from '../pipeline.js'
import type {DiskSettings} from './inputs.js'
import {parseContainers, parseDfVerbose, parseImages} from './inventory.js'
import type {DiskFacts, Inventory} from './plan.js'

/** Free bytes on the file system holding `dir` for an unprivileged writer (statfs; needs no root). */
export async function freeSpace(dir: string): Promise<number> {
  const s = await fs.statfs(dir)
  return s.bavail * s.bsize
}

/** `docker system df` as Docker prints it, for the summary. */
export async function systemDf(runner: CommandRunner): Promise<string> {
  const r = await runner.run(['docker', 'system', 'df'], {root: true, timeoutSeconds: 300})
  return r.stdout.trimEnd()
}

async function inspect(runner: CommandRunner, kind: 'container' | 'image', ids: string[]) {
  if (ids.length === 0) return '[]'
  const r = await runner.run(['docker', kind, 'inspect', ...ids], {
    root: true,
    allowFailure: true,
    timeoutSeconds: 120
  })
  // An item removed between the listing and the inspect is left out; the others are printed.
  return r.stdout.trim() || '[]'
}

const ids = (text: string): string[] => [...new Set(text.split('\n').filter(Boolean))]

/** Every container and image with its sizes and times, and the build cache and volume totals. */
export async function readInventory(runner: CommandRunner): Promise<Inventory> {
  const opts = {root: true, timeoutSeconds: 300}
  const [df, containers, images] = await Promise.all([
    runner.run(['docker', 'system', 'df', '-v', '--format', '{{json .}}'], opts),
    runner.run(['docker', 'ps', '--all', '--quiet', '--no-trunc'], opts),
    runner.run(['docker', 'images', '--all', '--quiet', '--no-trunc'], opts)
  ])
  const sizes = parseDfVerbose(df.stdout)
  return {
    containers: parseContainers(await inspect(runner, 'container', ids(containers.stdout)), sizes),
    images: parseImages(await inspect(runner, 'image', ids(images.stdout)), sizes),
    buildCache: sizes.buildCache,
    volumes: sizes.volumes
  }
}

/**
 * Docker's data root as the daemon reports it (DockerRootDir of /info): from the Engine API when
 * the socket is at hand (no docker process to start: the check stays cheap on every rerun), else
 * from `docker info`. Undefined when Docker does not answer.
 */
export async function dockerRootDir(runner: CommandRunner): Promise<string | undefined> {
  const info = (await engineGet('/info')) as {DockerRootDir?: unknown} | undefined
  if (typeof info?.DockerRootDir === 'string') return info.DockerRootDir
  const r = await runner.run(['docker', 'info', '--format', '{{.DockerRootDir}}'], {
    root: true,
    allowFailure: true,
    timeoutSeconds: 30
  })
  const dir = r.stdout.trim()
  return r.exitCode === 0 && dir.startsWith('/') ? dir : undefined
}

/**
 * Reads free space on Docker's data root (dockerRootDir, statfs) when min-free-space is set, and,
 * only when it is short, everything Docker holds; changes nothing. Sets freed-bytes to 0.
 */
export async function detectDisk(ctx: PhaseContext<DiskSettings>): Promise<DiskFacts> {
  const {inputs, runner} = ctx
  const none = {wanted: false, dockerUp: false, dataRoot: '', free: 0, now: Date.now()}
  if (inputs.minFreeSpace === undefined) return none
  const dataRoot = await dockerRootDir(runner)
  if (dataRoot === undefined) return {...none, wanted: true}
  const free = await freeSpace(dataRoot).catch((e: Error) => {
    throw new HostError(
      `Cannot read the free space of Docker's data root ${dataRoot}: ${e.message}`
    )
  })
  ctx.outputs.disk = {
    dataRoot,
    minFree: inputs.minFreeSpace,
    freeBefore: free,
    freeAfter: free,
    freedBytes: 0,
    removed: []
  }
  const facts = {wanted: true, dockerUp: true, dataRoot, free, now: Date.now()}
  if (free >= inputs.minFreeSpace) return facts
  const dfBefore = await systemDf(runner)
  ctx.outputs.disk.dfBefore = dfBefore
  return {...facts, inventory: await readInventory(runner)}
}
