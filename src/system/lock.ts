/**
 * The host's lock folder, /run/lock/docker-gpu-setup: the host lock (its `owner` file), the short
 * lock that GPU leases are chosen under, and one lease file per GPU. Every lock is a file created
 * whole or not at all (link(2) of a complete temporary file), so no reader ever sees a half-written
 * owner, and the folder goes away once nothing is left in it.
 */
import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import type {CommandRunner} from '../exec/runner.js'
import {HostError} from '../errors.js'
import {readFileMaybe} from './files.js'
import {pidAlive} from './process.js'

/** The host lock folder; it holds the host lock, the GPU lease lock and the GPU leases. */
export const LOCK_DIR = '/run/lock/docker-gpu-setup'
/** The host lock: one run at a time changes packages, daemon.json and the daemon. */
const OWNER = `${LOCK_DIR}/owner`
/** Held only while GPU leases are read and written (milliseconds), never while waiting. */
export const GPU_LEASE_LOCK = `${LOCK_DIR}/gpus.lock`

/** A held lock; release() removes it (only if this process still owns it). */
export interface HostLock {
  release(): Promise<void>
}

// One fixed script (arguments stay argv): install the complete file beside its name, link it to
// the name (link fails when the name exists), drop the temporary name. Exit 3: the name exists.
const CREATE_SCRIPT =
  'd=$(dirname "$3"); install -d -m 0755 "$d" && install -m 0644 "$1" "$2" || exit 1; ' +
  'if ln "$2" "$3" 2>/dev/null; then r=0; elif [ -e "$3" ]; then r=3; else r=1; fi; rm -f "$2"; exit $r'

async function createAsRoot(file: string, content: string): Promise<'made' | 'exists' | 'retry'> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`)
  try {
    await fs.mkdir(path.dirname(file), {recursive: true, mode: 0o755})
    await fs.writeFile(tmp, content, {mode: 0o644})
    await fs.chmod(tmp, 0o644)
    await fs.link(tmp, file)
    return 'made'
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return 'exists'
    // The folder went away between mkdir and the write (a release removed it as empty): again.
    if (code === 'ENOENT') return 'retry'
    throw e
  } finally {
    await fs.rm(tmp, {force: true})
  }
}

async function createWithSudo(
  runner: CommandRunner,
  file: string,
  content: string,
  tempDir: string
): Promise<'made' | 'exists' | 'retry'> {
  const staged = path.join(tempDir, `staged-${process.pid}-${path.basename(file)}`)
  await fs.writeFile(staged, content, {mode: 0o600})
  try {
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`)
    const r = await runner.run(['sh', '-c', CREATE_SCRIPT, 'sh', staged, tmp, file], {
      root: true,
      allowFailure: true
    })
    return r.exitCode === 0 ? 'made' : r.exitCode === 3 ? 'exists' : 'retry'
  } finally {
    await fs.rm(staged, {force: true})
  }
}

/** Creates `file` holding `content` unless it exists (true when made); creates the lock folder. */
export async function createExclusive(
  runner: CommandRunner,
  file: string,
  content: string,
  tempDir: string
): Promise<boolean> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = runner.isRoot
      ? await createAsRoot(file, content)
      : await createWithSudo(runner, file, content, tempDir)
    if (r !== 'retry') return r === 'made'
  }
  throw new HostError(`Could not create ${file} (as root, or through sudo).`)
}

/** Removes a lock folder when nothing is left in it; another lock or a lease keeps it. */
async function removeDirIfEmpty(runner: CommandRunner, dir: string): Promise<void> {
  if (runner.isRoot) await fs.rmdir(dir).catch(() => undefined)
  else await runner.run(['rmdir', '--', dir], {root: true, allowFailure: true})
}

/**
 * Removes `file` when `ours(text)` says it is still this run's; never waits for any lock. Says
 * what it found: removed, already gone, or another owner's (left alone).
 */
export async function removeIfOurs(
  runner: CommandRunner,
  file: string,
  ours: (text: string) => boolean
): Promise<'removed' | 'gone' | 'other'> {
  const text = await readFileMaybe(runner, file)
  if (text === undefined) return 'gone'
  if (!ours(text)) return 'other'
  if (runner.isRoot) await fs.rm(file, {force: true})
  else await runner.run(['rm', '-f', '--', file], {root: true})
  await removeDirIfEmpty(runner, path.dirname(file))
  return 'removed'
}

/**
 * Moves a stale lock file out of the way. The rename is atomic, so of two runs taking the same
 * file over only one moves it; a file that proves not to be the stale one (a live owner's, made
 * in between) is put back.
 */
export async function takeOver(
  runner: CommandRunner,
  file: string,
  staleText: string
): Promise<void> {
  const aside = `${file}.${process.pid}.stale`
  const moved = runner.isRoot
    ? await fs.rename(file, aside).then(
        () => true,
        () => false
      )
    : (await runner.run(['mv', '-T', '--', file, aside], {root: true, allowFailure: true}))
        .exitCode === 0
  if (!moved) return
  const text = await readFileMaybe(runner, aside)
  if (text !== staleText) {
    if (runner.isRoot) await fs.link(aside, file).catch(() => undefined)
    else await runner.run(['ln', '--', aside, file], {root: true, allowFailure: true})
  }
  if (runner.isRoot) await fs.rm(aside, {force: true})
  else await runner.run(['rm', '-f', '--', aside], {root: true})
}

/** What a lock file is called in messages, and how long to wait for it. */
export interface LockWait {
  /** E.g. "the host lock /run/lock/docker-gpu-setup". */
  what: string
  timeoutMs: number
  pollMs: number
}

/**
 * Takes a lock file holding this process's pid. A lock whose owner is dead (or unreadable) is
 * taken over; a live owner is waited for, up to `timeoutMs`, saying so once in the log.
 */
export async function acquireFileLock(
  runner: CommandRunner,
  file: string,
  tempDir: string,
  info: (message: string) => void,
  wait: LockWait
): Promise<HostLock> {
  const end = Date.now() + wait.timeoutMs
  const mine = `${process.pid}\n`
  let told = false
  for (;;) {
    if (await createExclusive(runner, file, mine, tempDir)) {
      return {release: async () => void (await removeIfOurs(runner, file, t => t === mine))}
    }
    const text = await readFileMaybe(runner, file)
    if (text === undefined) continue
    const owner = Number(text.trim())
    if (!Number.isInteger(owner) || owner <= 0 || !pidAlive(owner)) {
      info(`Taking over ${wait.what}: its owner (pid ${owner || 'unknown'}) is gone.`)
      await takeOver(runner, file, text)
      continue
    }
    if (Date.now() > end) {
      throw new HostError(
        `Another docker-gpu-setup run (pid ${owner}) has held ${wait.what} for over ${Math.round(wait.timeoutMs / 60_000)} minutes; if no run is active, remove ${file}.`
      )
    }
    if (!told) {
      info(`Waiting for ${wait.what}, held by pid ${owner} (another run on this host).`)
      told = true
    }
    await new Promise(r => setTimeout(r, wait.pollMs))
  }
}

/**
 * Takes the host lock (the `owner` file in the lock folder, holding this process's pid). A lock
 * whose owner is dead is taken over; a live owner is waited for, up to `timeoutMs`.
 */
export async function acquireHostLock(
  runner: CommandRunner,
  tempDir: string,
  info: (message: string) => void,
  timeoutMs = 15 * 60_000
): Promise<HostLock> {
  return acquireFileLock(runner, OWNER, tempDir, info, {
    what: `the host lock ${LOCK_DIR}`,
    timeoutMs,
    pollMs: 250
  })
}
