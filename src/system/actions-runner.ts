/**
 * The GitHub runner this job runs under, as /proc shows it: its folder (where `.runner` and `.env`
 * live); runner-label.ts names what that folder gives it.
 */
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
