/** The post step's release of the job's GPU leases: removes only the lease files that still name its worker process. */
import * as core from '@actions/core'
import type {CommandRunner} from '../../exec/runner.js'
import type {SavedLease} from '../../state.js'
import {removeIfOurs} from '../../system/lock.js'
import {leasePath} from './apply.js'
import {heldBy, parseLease} from './lease.js'

/**
 * Releases exactly the leases the main step saved: removes each lease file that still names the
 * saved worker process (pid and start time), never one another job took since. Takes no lock and
 * waits for nothing, so a release is never held up by another run.
 */
export async function releaseLeases(runner: CommandRunner, saved: readonly SavedLease[]) {
  for (const s of saved) {
    const gpu = `GPU ${s.index} (${s.uuid})`
    const r = await removeIfOurs(runner, leasePath(s.uuid), text => {
      const lease = parseLease(text)
      return lease !== undefined && heldBy(lease, s)
    })
    if (r === 'removed') core.info(`Released ${gpu}.`)
    else if (r === 'gone') core.info(`${gpu}: its lease was already released.`)
    else core.info(`${gpu}: its lease now belongs to another job; left alone.`)
  }
}
