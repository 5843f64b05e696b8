/**
 * The host's lock folder, /run/docker-gpu-setup: the host lock (its `owner` file), the short lock
 * that GPU leases are chosen under, and one lease file per GPU. The folder sits in /run, where only
 * root writes, is made 0755 and checked before every lock is written (a real folder, root's,
 * writable by no one else), and stays when empty: no other user can make it first or plant files
 * in it. Every lock is a file created whole or not at all (link(2) of a complete temporary file,
 * itself created with O_EXCL|O_NOFOLLOW), so no reader ever sees a half-written owner.
 */
import {randomBytes} from 'node:crypto'
import {constants, promises as fs} from 'node:fs'
import * as path from 'node:path'
import type {CommandRunner} from '../exec/runner.js'
import {HostError} from '../errors.js'
import {readFileMaybe} from './files.js'
import {pidAlive, processIdentity, sameProcessAlive} from './process.js'

/** The host lock folder; it holds the host lock, the GPU lease lock and the GPU leases. */
export const LOCK_DIR = '/run/docker-gpu-setup'
/** The host lock: one run at a time changes packages, daemon.json and the daemon. */
const OWNER = `${LOCK_DIR}/owner`
/** Held only while GPU leases are read and written (milliseconds), never while waiting. */
export const GPU_LEASE_LOCK = `${LOCK_DIR}/gpus.lock`

/** A held lock; release() removes it (only if this process still owns it). */
export interface HostLock {
  release(): Promise<void>
}

/** The refusal of a lock folder that someone other than root could write or has replaced. */
function unsafeDir(dir: string, found: string): HostError {
  return new HostError(
    `${dir} must be a folder owned by root and writable by no one else, but is: ${found}. Another user may have planted it; remove it (sudo rm -rf ${dir}) when no docker-gpu-setup run is active, and run again.`
  )
}

/**
 * What is wrong with the lock folder as lstat(2) sees it (pure), or undefined when it is a real
 * folder owned by `uid` (the user writing as root) that no one else can write.
 */
export function lockDirProblem(
  st: {isDirectory(): boolean; isSymbolicLink(): boolean; uid: number; mode: number},
  uid: number
): string | undefined {
  const kind = st.isSymbolicLink()
    ? 'symbolic link'
    : st.isDirectory()
      ? 'directory'
      : 'not a folder'
  const found = `${kind}, owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}`
  return kind !== 'directory' || st.uid !== uid || (st.mode & 0o022) !== 0 ? found : undefined
}

/** Makes the lock folder (0755) when missing, then checks it; never follows a symlink. */
async function ensureLockDir(dir: string): Promise<void> {
  await fs.mkdir(dir, {mode: 0o755}).then(
    () => fs.chmod(dir, 0o755),
    (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e
    }
  )
  const problem = lockDirProblem(await fs.lstat(dir), process.getuid?.() ?? 0)
  if (problem) throw unsafeDir(dir, problem)
}

// One fixed script (arguments stay argv), run as root: make the folder and check it as
// ensureLockDir does (exit 4, printing what it found), write the complete file under a name
// mktemp(1) creates with O_EXCL, link it to the name (link fails when the name exists), drop the
// temporary name. Exit 3: the name exists.
const CREATE_SCRIPT =
  'd=$(dirname "$2"); mkdir -m 0755 "$d" 2>/dev/null; ' +
  'if [ -L "$d" ] || [ ! -d "$d" ] || [ "$(stat -c %u "$d")" != "$(id -u)" ] || ' +
  '[ $((0$(stat -c %a "$d") & 022)) -ne 0 ]; then stat -c "%F, owner uid %u, mode %a" "$d" >&2; exit 4; fi; ' +
  't=$(mktemp "$d/.lock.XXXXXXXXXX") || exit 1; ' +
  'if cat "$1" > "$t" && chmod 0644 "$t"; then ' +
  'if ln "$t" "$2" 2>/dev/null; then r=0; elif [ -e "$2" ]; then r=3; else r=1; fi; ' +
  'else r=1; fi; rm -f "$t"; exit $r'

async function createAsRoot(file: string, content: string): Promise<'made' | 'exists' | 'retry'> {
  const dir = path.dirname(file)
  await ensureLockDir(dir)
  // Unguessable and never followed: a name planted in its place makes the open fail, not redirect.
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(8).toString('hex')}.tmp`)
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  try {
    const handle = await fs.open(tmp, flags, 0o644)
    try {
      await handle.writeFile(content)
      await handle.chmod(0o644)
    } finally {
      await handle.close()
    }
    await fs.link(tmp, file)
    return 'made'
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return 'exists'
    // The folder went away between the check and the write (removed by hand): again.
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
    const r = await runner.run(['sh', '-c', CREATE_SCRIPT, 'sh', staged, file], {
      root: true,
      allowFailure: true
    })
    if (r.exitCode === 4) throw unsafeDir(path.dirname(file), r.stderr.trim())
    return r.exitCode === 0 ? 'made' : r.exitCode === 3 ? 'exists' : 'retry'
  } finally {
    await fs.rm(staged, {force: true})
  }
}

/**
 * Creates `file` holding `content` unless it exists (true when made); makes and checks the lock
 * folder, refusing one that is not root's alone.
 */
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

/** A lock file's text: the pid and, to tell it from a later process with that pid, its start time. */
export function lockText(pid: number): string {
  const start = processIdentity(pid)?.start
  return start === undefined ? `${pid}\n` : `${pid} ${start}\n`
}

/** The pid a lock file names (0 when none). */
function lockOwner(text: string): number {
  const pid = Number(text.trim().split(/\s+/)[0])
  return Number.isInteger(pid) && pid > 0 ? pid : 0
}

/**
 * Whether the process that wrote a lock file still runs: the same pid and start time; a file of
 * a pid alone (written by hand, or by an older release) is judged by the pid.
 */
function ownerAlive(text: string): boolean {
  const pid = lockOwner(text)
  const start = text.trim().split(/\s+/)[1]
  return start === undefined ? pidAlive(pid) : sameProcessAlive(pid, start)
}

/** What a lock file is called in messages, and how long to wait for it. */
export interface LockWait {
  /** E.g. "the host lock /run/docker-gpu-setup". */
  what: string
  timeoutMs: number
  pollMs: number
}

/**
 * Takes a lock file holding this process's pid and start time. A lock whose owner is dead (or
 * unreadable, or whose pid now belongs to a later process) is taken over; a live owner is waited
 * for, up to `timeoutMs`, saying so once in the log.
 */
export async function acquireFileLock(
  runner: CommandRunner,
  file: string,
  tempDir: string,
  info: (message: string) => void,
  wait: LockWait
): Promise<HostLock> {
  const end = Date.now() + wait.timeoutMs
  const mine = lockText(process.pid)
  let told = false
  for (;;) {
    if (await createExclusive(runner, file, mine, tempDir)) {
      return {release: async () => void (await removeIfOurs(runner, file, t => t === mine))}
    }
    const text = await readFileMaybe(runner, file)
    if (text === undefined) continue
    const owner = lockOwner(text)
    if (!ownerAlive(text)) {
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
 * Takes the host lock (the `owner` file in the lock folder, holding this process's pid and start
 * time). A lock whose owner is dead is taken over; a live owner is waited for, up to `timeoutMs`.
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
