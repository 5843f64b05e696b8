/** Driver hold phase: the apt.conf fragment that keeps unattended upgrades off the NVIDIA packages (writes /etc/apt/apt.conf.d). */
import {HostError} from '../../errors.js'
import {installedPackages} from '../../system/apt.js'
import {exists, readFileMaybe, removeFile, writeFileAtomic} from '../../system/files.js'
import type {Phase} from '../pipeline.js'
import {
  HOLD_FRAGMENT,
  NVIDIA_PACKAGE_GLOBS,
  holdFragment,
  planDriverHold,
  type DriverHoldFacts,
  type DriverHoldPlan
} from './driver-hold.js'
import {MODULE_VERSION_FILE} from './health-driver.js'

/** What the driver hold phase reads: hold-nvidia-driver. */
export interface DriverHoldInputs {
  hold: boolean
}

/**
 * Driver hold phase: keeps unattended-upgrades off the NVIDIA driver and container toolkit
 * (hold-nvidia-driver) with one apt.conf fragment it owns, written or removed under the host
 * lock, after the daemon phase installed the toolkit. Sets the toolkit-version output.
 */
export const driverHoldPhase: Phase<DriverHoldInputs, DriverHoldFacts, DriverHoldPlan> = {
  name: 'NVIDIA driver hold',
  async detect(ctx): Promise<DriverHoldFacts> {
    const [fragment, nvidia, driverLoaded] = await Promise.all([
      readFileMaybe(ctx.runner, HOLD_FRAGMENT),
      installedPackages(ctx.runner, NVIDIA_PACKAGE_GLOBS),
      exists(MODULE_VERSION_FILE)
    ])
    ctx.outputs.toolkitVersion = nvidia.get('nvidia-container-toolkit')
    return {hold: ctx.inputs.hold, fragment, nvidia, driverLoaded}
  },
  plan: facts => planDriverHold(facts),
  async apply(plan, ctx) {
    if (plan.action === 'write') {
      await writeFileAtomic(ctx.runner, HOLD_FRAGMENT, holdFragment(), 0o644, ctx.host.tempDir)
    } else if (plan.action === 'remove') {
      await removeFile(ctx.runner, HOLD_FRAGMENT)
    }
  },
  async verify(plan, ctx) {
    const now = await readFileMaybe(ctx.runner, HOLD_FRAGMENT)
    const held = now === holdFragment()
    if ((plan.action === 'write') !== held) {
      throw new HostError(
        `${HOLD_FRAGMENT} is not as this run left it: another program changes it.`
      )
    }
    return held
      ? `unattended-upgrades keeps off the NVIDIA packages (${HOLD_FRAGMENT})`
      : 'unattended-upgrades may upgrade the NVIDIA packages'
  }
}
