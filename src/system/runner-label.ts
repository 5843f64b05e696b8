/**
 * The runner's names from its folder's path (pure): actions/runner's path hash, and the label it
 * puts on the containers and networks it makes.
 */
import {createHash} from 'node:crypto'

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
