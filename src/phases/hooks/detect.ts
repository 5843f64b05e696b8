/** Reads the runner's folder, its .env and the installed hook files (changes nothing). */
import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import {runnerFolder} from '../../system/actions-runner.js'
import {readFileMaybe} from '../../system/files.js'
import {processIdentity} from '../../system/process.js'
import type {PhaseContext} from '../pipeline.js'
import type {HookConfig, HookSettings} from './inputs.js'
import {LEASE_RUNTIME_FILES} from '../../docker/lease-runtime.js'
import {fileList, hookFilesOf, type HookFacts} from './plan.js'

/** The runner's folder (from the job's worker), its .env, and what is installed now. */
export async function detectHooks(ctx: PhaseContext<HookSettings>): Promise<HookFacts> {
  const facts: HookFacts = {env: '', installed: {}, node: process.execPath, bundle: ''}
  if (ctx.inputs.runnerHooks === 'none') return facts
  // The worker is the parent of this step's node process.
  const worker = processIdentity(process.ppid)
  const folder = worker ? await runnerFolder(worker.pid) : undefined
  const installed: Record<string, string | undefined> = {}
  if (folder !== undefined) {
    const runtime = [
      LEASE_RUNTIME_FILES.script,
      LEASE_RUNTIME_FILES.bundle,
      LEASE_RUNTIME_FILES.packageJson
    ]
    for (const f of [...fileList(hookFilesOf(folder)), ...runtime]) {
      installed[f] = await readFileMaybe(ctx.runner, f)
    }
  }
  return {
    folder,
    env: folder ? ((await readFileMaybe(ctx.runner, path.join(folder, '.env'))) ?? '') : '',
    installed,
    node: process.execPath,
    // The running bundle (dist/index.js) is what the hooks will run.
    bundle: ctx.inputs.runnerHooks === 'install' ? await fs.readFile(process.argv[1], 'utf8') : '',
    runtimeNode: await sameRootFile(LEASE_RUNTIME_FILES.node, process.execPath)
  }
}

/**
 * `copy` is root's, not writable by others, and the same node as `original`: the same size and
 * modification time, which the copy keeps (`install -p`). A stat, not a hash of ~100 MB per run.
 */
async function sameRootFile(copy: string, original: string): Promise<boolean> {
  const [a, b] = await Promise.all([fs.stat(copy).catch(() => undefined), fs.stat(original)])
  return (
    a !== undefined &&
    a.uid === 0 &&
    (a.mode & 0o022) === 0 &&
    a.size === b.size &&
    a.mtimeMs === b.mtimeMs
  )
}

/**
 * What the installed hooks do: the settings the install wrote beside the bundle that runs (root's,
 * the runner's own: hookFilesOf); nothing when unreadable.
 */
export async function readHookConfig(bundle: string = process.argv[1] ?? ''): Promise<HookConfig> {
  const text = await fs
    .readFile(path.join(path.dirname(bundle), 'hooks.json'), 'utf8')
    .catch(() => '{}')
  const v = JSON.parse(text) as Partial<HookConfig>
  return {
    gpus: typeof v.gpus === 'string' ? v.gpus : '',
    gpuWait: typeof v.gpuWait === 'number' ? v.gpuWait : 900,
    teardown: v.teardown === true,
    // Hooks installed before the gate existed run it as the input's default does.
    gpuHealth: v.gpuHealth === 'warn' || v.gpuHealth === 'off' ? v.gpuHealth : 'fail',
    gpuCountExpected: typeof v.gpuCountExpected === 'number' ? v.gpuCountExpected : undefined
  }
}
