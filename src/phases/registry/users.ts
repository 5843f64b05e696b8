/**
 * Which jobs use the action's registry containers: one marker file per job and container in the
 * host lock folder (root's alone), named after the job's worker process (pid and start time), so
 * that a post step with cleanup: registry removes only a container no other live job uses.
 */
import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import type {CommandRunner} from '../../exec/runner.js'
import {exists, readFileMaybe, removeFile} from '../../system/files.js'
import {LOCK_DIR, createExclusive} from '../../system/lock.js'
import {processIdentity, sameProcessAlive, type ProcessIdentity} from '../../system/process.js'

const MARKER = /^registry-user\.(.+)\.(\d+)\.(\d+)$/

/**
 * The job's worker: the parent of the action's node process in the main and the post step alike
 * (undefined when there is none, e.g. the action started by init: its use is then not recorded).
 */
export function jobWorker(): ProcessIdentity | undefined {
  return process.ppid > 1 ? processIdentity(process.ppid) : undefined
}

function markerName(container: string, worker: ProcessIdentity): string {
  return `registry-user.${container}.${worker.pid}.${worker.start}`
}

/**
 * Records that this job uses `containers` (once per job and container; the text names the job).
 * Runs under the host lock (the registry phase's check), as the post step reads them.
 */
export async function recordUse(
  runner: CommandRunner,
  containers: readonly string[],
  tempDir: string,
  dir = LOCK_DIR,
  env: NodeJS.ProcessEnv = process.env
): Promise<void> {
  const worker = jobWorker()
  if (worker === undefined) return
  const run = env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID
  const job = `job ${env.GITHUB_JOB || 'unnamed'}${run ? ` (${env.GITHUB_REPOSITORY} run ${env.GITHUB_RUN_ID})` : ''}`
  for (const c of containers) {
    const file = path.join(dir, markerName(c, worker))
    // A rerun in the same job finds its record (readable by all): no sudo for nothing.
    if (!(await exists(file)))
      await createExclusive(runner, file, `${job}, worker pid ${worker.pid}\n`, tempDir)
  }
}

/**
 * The other live jobs that use `container`, in words; drops the markers of jobs whose worker has
 * ended. `me`: this job's worker, whose own markers do not count.
 */
export async function otherUsers(
  runner: CommandRunner,
  container: string,
  me: ProcessIdentity | undefined,
  dir = LOCK_DIR
): Promise<string[]> {
  const users: string[] = []
  for (const m of await markers(dir)) {
    if (m.container !== container || (me?.pid === m.pid && me.start === m.start)) continue
    if (!sameProcessAlive(m.pid, m.start)) await removeFile(runner, m.file)
    else users.push((await readFileMaybe(runner, m.file))?.trim() || `worker pid ${m.pid}`)
  }
  return users
}

/** Removes this job's markers (its post step: the job no longer uses any container). */
export async function forgetUse(
  runner: CommandRunner,
  me: ProcessIdentity | undefined,
  dir = LOCK_DIR
): Promise<void> {
  if (me === undefined) return
  for (const m of await markers(dir)) {
    if (m.pid === me.pid && m.start === me.start) await removeFile(runner, m.file)
  }
}

/** The markers in the folder, parsed from their names. */
async function markers(
  dir: string
): Promise<{file: string; container: string; pid: number; start: string}[]> {
  const names = await fs.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return []
    throw e
  })
  return names.flatMap(name => {
    const m = MARKER.exec(name)
    return m ? [{file: path.join(dir, name), container: m[1], pid: Number(m[2]), start: m[3]}] : []
  })
}
