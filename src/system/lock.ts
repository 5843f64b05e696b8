import type {CommandRunner} from '../exec/runner.js'
import {HostError} from '../errors.js'
import {readFileMaybe, writeFileAtomic} from './files.js'
import {pidAlive} from './process.js'

/** The host-wide lock: one run at a time changes packages, daemon.json and the daemon. */
export const LOCK_DIR = '/run/lock/docker-gpu-setup'
const OWNER = `${LOCK_DIR}/owner`

/** A held lock; release() removes it (only if this process still owns it). */
export interface HostLock {
  release(): Promise<void>
}

/**
 * Takes the host lock: an atomic `mkdir` holding the owner's pid. A lock whose owner is dead is
 * taken over; a live owner is waited for, up to `timeoutMs`, saying so once in the log.
 */
export async function acquireHostLock(
  runner: CommandRunner,
  tempDir: string,
  info: (message: string) => void,
  timeoutMs = 15 * 60_000
): Promise<HostLock> {
  const end = Date.now() + timeoutMs
  let told = false
  let ownerMissingSince: number | undefined
  for (;;) {
    const made = await runner.run(['mkdir', '-m', '0755', LOCK_DIR], {
      root: true,
      allowFailure: true
    })
    if (made.exitCode === 0) {
      await writeFileAtomic(runner, OWNER, `${process.pid}\n`, 0o644, tempDir)
      return {
        async release() {
          const owner = (await readFileMaybe(runner, OWNER))?.trim()
          if (owner === String(process.pid)) {
            await runner.run(['rm', '-rf', '--', LOCK_DIR], {root: true, allowFailure: true})
          }
        }
      }
    }
    const owner = Number((await readFileMaybe(runner, OWNER))?.trim())
    // No owner file: a run between mkdir and writing it, or one killed right there.
    ownerMissingSince = owner > 0 ? undefined : (ownerMissingSince ?? Date.now())
    const ownerless = ownerMissingSince !== undefined && Date.now() - ownerMissingSince > 10_000
    if (ownerless || (Number.isInteger(owner) && owner > 0 && !pidAlive(owner))) {
      info(`Taking over the host lock ${LOCK_DIR}: its owner (pid ${owner || 'unknown'}) is gone.`)
      await runner.run(['rm', '-rf', '--', LOCK_DIR], {root: true, allowFailure: true})
      continue
    }
    if (Date.now() > end) {
      throw new HostError(
        `Another docker-gpu-setup run (pid ${owner || 'unknown'}) has held ${LOCK_DIR} for over ${Math.round(timeoutMs / 60_000)} minutes; if no run is active, remove that folder.`
      )
    }
    if (!told) {
      info(
        `Waiting for the host lock ${LOCK_DIR}, held by pid ${owner || 'unknown'} (another run on this host).`
      )
      told = true
    }
    await new Promise(r => setTimeout(r, 250))
  }
}
