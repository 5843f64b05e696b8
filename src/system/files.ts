/** File adapters: reads and listings (root-only ones through the runner), atomic writes, renames, removals. */
import {randomBytes} from 'node:crypto'
import {promises as fs, constants} from 'node:fs'
import * as path from 'node:path'
import type {CommandRunner} from '../exec/runner.js'

/** Reads a file; undefined when it does not exist. Root-only files are read through the runner. */
export async function readFileMaybe(
  runner: CommandRunner,
  file: string
): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code !== 'EACCES' || runner.isRoot) throw e
  }
  const r = await runner.run(['cat', '--', file], {root: true, allowFailure: true})
  return r.exitCode === 0 ? r.stdout : undefined
}

/**
 * The names in a folder; none when it does not exist. One only root may read is listed through
 * sudo when the action is not root.
 */
export async function listDirMaybe(runner: CommandRunner, dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    if (code !== 'EACCES' || runner.isRoot) throw e
  }
  const r = await runner.run(['ls', '-1', '--', dir], {root: true})
  return r.stdout.split('\n').filter(Boolean)
}

/** True when the path exists (reads nothing in it). */
export async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file, constants.F_OK)
    return true
  } catch {
    return false
  }
}

/**
 * Writes a root-owned file atomically: a temp file beside it, then rename, so readers never see
 * half a file. Creates the parent folder. Works as root or through sudo.
 */
export async function writeFileAtomic(
  runner: CommandRunner,
  file: string,
  content: string | Buffer,
  mode = 0o644,
  tempDir: string
): Promise<void> {
  const dir = path.dirname(file)
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`)
  if (runner.isRoot) {
    // 0755 as the sudo path's install -d makes it, whatever the umask: /run/docker-gpu-setup is
    // also the host lock folder, which must be writable by root alone.
    await fs.mkdir(dir, {recursive: true, mode: 0o755})
    await fs.writeFile(tmp, content, {mode})
    await fs.chmod(tmp, mode)
    await fs.rename(tmp, file)
    return
  }
  const staged = path.join(tempDir, `staged-${process.pid}-${path.basename(file)}`)
  await fs.writeFile(staged, content, {mode: 0o600})
  try {
    await runner.run(['install', '-d', '-m', '0755', dir], {root: true})
    await runner.run(['install', '-m', mode.toString(8), staged, tmp], {root: true})
    await runner.run(['mv', '-f', '--', tmp, file], {root: true})
  } finally {
    await fs.rm(staged, {force: true})
  }
}

/** Sets a file's mode (as root where needed). */
export async function setMode(runner: CommandRunner, file: string, mode: number): Promise<void> {
  if (runner.isRoot) await fs.chmod(file, mode)
  else await runner.run(['chmod', mode.toString(8), '--', file], {root: true})
}

/** Renames (as root where needed); used to set files aside instead of deleting them. */
export async function renameFile(runner: CommandRunner, from: string, to: string): Promise<void> {
  if (runner.isRoot) await fs.rename(from, to)
  else await runner.run(['mv', '-f', '--', from, to], {root: true})
}

/** Removes a file (as root where needed); missing is fine. */
export async function removeFile(runner: CommandRunner, file: string): Promise<void> {
  if (runner.isRoot) await fs.rm(file, {force: true})
  else await runner.run(['rm', '-f', '--', file], {root: true})
}

const randomHex = (): string => randomBytes(6).toString('hex')

/**
 * Writes a file in a user's own folder (a Docker client config) atomically, as this process: the
 * folder is made when missing (0700), and when the process is root the file keeps the owner the
 * folder has, so the user can still read and change it. Keeps an existing file's mode, closed to
 * its owner when `secret`.
 */
export async function writeOwnedFile(
  file: string,
  content: string,
  mode = 0o600,
  secret = false
): Promise<void> {
  const dir = path.dirname(file)
  if (!(await exists(dir))) {
    const parent = await fs.stat(path.dirname(dir))
    await fs.mkdir(dir, {mode: 0o700})
    if (process.getuid?.() === 0) await fs.chown(dir, parent.uid, parent.gid)
  }
  // Only a regular file at the name lends its owner and mode: a link planted there lends neither
  // its target's nor its own (0777).
  const found = await fs.lstat(file).catch(() => undefined)
  const regular = found?.isFile() ? found : undefined
  const owner = regular ?? (await fs.stat(dir))
  const kept = regular ? regular.mode & 0o777 : mode
  // A file that holds a secret is its owner's alone, whatever mode it had.
  const keep = secret ? kept & 0o600 : kept
  // A new name, created here (O_EXCL|O_NOFOLLOW), and changed only through its handle: the folder's
  // owner may swap names in it, but never makes root write, chmod or chown another file.
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${randomHex()}`)
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  const handle = await fs.open(tmp, flags, keep)
  try {
    await handle.writeFile(content)
    await handle.chmod(keep)
    if (process.getuid?.() === 0) await handle.chown(owner.uid, owner.gid)
  } finally {
    await handle.close()
  }
  await fs.rename(tmp, file)
}
