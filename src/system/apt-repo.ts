/** An apt repository of the action's own: its signing key fetched and checked, its sources file written, stale copies of it set aside. */
import {randomUUID} from 'node:crypto'
import {promises as fs} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as core from '@actions/core'
import {downloadTool} from '@actions/tool-cache'
import type {CommandRunner} from '../exec/runner.js'
import {HostError, errorMessage} from '../errors.js'
import {MAIN_SOURCES, type SourceFile, type SourceFix} from '../models/apt-model.js'
import {readFileMaybe, renameFile, writeFileAtomic} from './files.js'

/** Suffix given to stale source files set aside (apt ignores it; nothing is deleted). */
export const DISABLED_SUFFIX = '.disabled-by-docker-gpu-setup'
/** Suffix of the copy kept of a source file whose entries were disabled (apt ignores it too). */
export const BACKUP_SUFFIX = '.before-docker-gpu-setup'
const SOURCES_DIR = '/etc/apt/sources.list.d'

/** Reads a signing key from an http(s) or file:// URL, or an absolute path; HostError when it cannot. */
export async function fetchKey(source: string): Promise<Buffer> {
  return readKey(source).catch((e: unknown) => {
    throw e instanceof HostError ? e : new HostError(errorMessage(e), {cause: e})
  })
}

async function readKey(source: string): Promise<Buffer> {
  if (source.startsWith('/')) return fs.readFile(source)
  if (source.startsWith('file://')) return fs.readFile(new URL(source))
  // An explicit destination: without one downloadTool needs RUNNER_TEMP, which a by-hand run
  // (`sudo node dist/index.js`: sudo drops it) does not have.
  const file = await downloadTool(
    source,
    path.join(os.tmpdir(), `docker-gpu-setup-key-${randomUUID()}`)
  )
  try {
    return await fs.readFile(file)
  } finally {
    await fs.rm(file, {force: true})
  }
}

/** True for an ASCII-armored key; a binary key starts with an OpenPGP packet tag (high bit set). */
export function isArmored(key: Buffer): boolean {
  return key.toString('latin1').includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')
}

/** One apt repository as this action configures it: key, keyring, source line, stale duplicates. */
export interface AptRepo {
  /** Where the key comes from (URL or path), for messages. */
  keySource: string
  key: Buffer
  keyring: string
  listPath: string
  line: string
  /** How to set aside the sources (other than listPath) that duplicate this repository. */
  stale(files: SourceFile[]): SourceFix[]
  /** Who the repository is, for the warning when a stale file is set aside. */
  what: string
}

/**
 * Makes an apt repository available: key into its keyring, a signed-by source, and stale
 * duplicates set aside (renamed, not deleted), each written only when it differs.
 * Touches /etc/apt/keyrings or /usr/share/keyrings and /etc/apt/sources.list.d.
 */
export async function ensureAptRepo(
  runner: CommandRunner,
  repo: AptRepo,
  tempDir: string
): Promise<void> {
  if (repo.key.length < 32) throw new HostError(`${repo.keySource} is not a PGP key`)
  // Keyrings are world-readable: compare bytes (a binary key does not survive a text read).
  const current = await fs.readFile(repo.keyring).catch(() => undefined)
  if (current === undefined || !current.equals(repo.key)) {
    await writeFileAtomic(runner, repo.keyring, repo.key, 0o644, tempDir)
  }
  if ((await readFileMaybe(runner, repo.listPath)) !== repo.line) {
    await writeFileAtomic(runner, repo.listPath, repo.line, 0o644, tempDir)
  }
  for (const fix of repo.stale(await sourceFiles(repo.listPath))) {
    if (fix.how === 'rename') {
      core.warning(
        `Setting aside ${fix.path}: it also points at ${repo.what} (renamed to ${fix.path}${DISABLED_SUFFIX})`
      )
      await renameFile(runner, fix.path, `${fix.path}${DISABLED_SUFFIX}`)
    } else {
      core.warning(
        `Disabling ${fix.entries} entr${fix.entries === 1 ? 'y' : 'ies'} for ${repo.what} in ${fix.path} (its other repositories stay; the file as it was is in ${fix.path}${BACKUP_SUFFIX})`
      )
      // -n: a copy from an earlier run is the file as it was before this action ever touched it.
      await runner.run(['cp', '-p', '-n', '--', fix.path, `${fix.path}${BACKUP_SUFFIX}`], {
        root: true
      })
      await writeFileAtomic(runner, fix.path, fix.content, 0o644, tempDir)
    }
  }
}

/** apt's source files other than `own`: sources.list and sources.list.d's .list and .sources files. */
async function sourceFiles(own: string): Promise<SourceFile[]> {
  const names = (await fs.readdir(SOURCES_DIR).catch(() => [] as string[]))
    .filter(n => n.endsWith('.list') || n.endsWith('.sources'))
    .map(n => path.join(SOURCES_DIR, n))
  const paths = [MAIN_SOURCES, ...names].filter(p => p !== own)
  const files = await Promise.all(
    paths.map(async p => ({path: p, content: await fs.readFile(p, 'utf8').catch(() => undefined)}))
  )
  return files.filter((f): f is SourceFile => f.content !== undefined)
}
