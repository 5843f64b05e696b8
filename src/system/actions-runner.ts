/**
 * The GitHub runner this job runs under, as /proc shows it: its folder (where `.runner` and `.env`
 * live) and the label it puts on the containers and networks it makes.
 */
import {createHash} from 'node:crypto'
import {promises as fs} from 'node:fs'
import * as path from 'node:path'

/** The worker's executable, and what it runs when it is a script under an interpreter. */
async function workerPaths(workerPid: number): Promise<string[]> {
  const exe = await fs.readlink(`/proc/${workerPid}/exe`).catch(() => '')
  const argv = await fs.readFile(`/proc/${workerPid}/cmdline`, 'utf8').catch(() => '')
  return [exe, ...argv.split('\0').slice(0, 2)].filter(p => path.basename(p) === 'Runner.Worker')
}

/**
 * The runner's folder: two above its worker's executable (bin/Runner.Worker), or four above the
 * node it runs actions with (externals/nodeNN/bin/node); the one that holds a `.runner` file.
 */
export async function runnerFolder(workerPid: number): Promise<string | undefined> {
  const roots = [
    ...(await workerPaths(workerPid)).map(p => path.dirname(path.dirname(path.resolve(p)))),
    path.resolve(process.execPath, '..', '..', '..', '..')
  ]
  for (const root of roots) {
    if (
      await fs.stat(path.join(root, '.runner')).then(
        s => s.isFile(),
        () => false
      )
    )
      return root
  }
  return undefined
}

/**
 * IOUtil.GetPathHash of actions/runner: SHA-256 (hex) of the path lower-cased, as UTF-8.
 */
export function pathHash(folder: string): string {
  return createHash('sha256').update(folder.toLowerCase(), 'utf8').digest('hex')
}

/**
 * The label key the runner puts on its job and service containers and its job network: the first
 * 6 hex digits of the hash of its root folder's path (DockerCommandManager's DockerInstanceLabel,
 * `IOUtil.GetPathHash(GetDirectory(WellKnownDirectory.Root)).Substring(0, 6)`, in actions/runner).
 * Runners installed at the same path (one image, many containers) share it.
 */
export function runnerLabelOf(folder: string): string {
  return pathHash(folder).slice(0, 6)
}
