/** The GPU check after the daemon is set: nvidia-smi on the host, then in a container with --gpus all, and a failure explained. */
import * as core from '@actions/core'
import {HostError, tailLines} from '../../errors.js'
import type {PhaseContext} from '../pipeline.js'
import {detectGpu} from './detect.js'
import {checkImageFor, explainGpuFailure, type GpuInfo} from './gpu.js'
import type {DaemonSettings} from './inputs.js'
import type {DaemonPlan} from './plan.js'
import type {GpuHealthResult} from '../../outputs.js'

type Ctx = PhaseContext<DaemonSettings>

/** The image for the check: gpu-check-image, else the newest CUDA base image the driver supports. */
function checkImage(ctx: Ctx, gpu: GpuInfo): string {
  const image = ctx.inputs.gpuCheckImage ?? checkImageFor(gpu.cudaVersion)
  if (image === undefined) {
    throw new HostError(
      `No CUDA check image fits driver ${gpu.driverVersion} (CUDA ${gpu.cudaVersion ?? 'unknown'}): set gpu-check-image.`
    )
  }
  return image
}

/** On an air-gapped host nothing is pulled: the image must already be there. */
async function requireLocalImage(ctx: Ctx, image: string): Promise<void> {
  if (ctx.inputs.offlineDebs === undefined) return
  const has = await ctx.runner.run(['docker', 'image', 'inspect', image], {
    root: true,
    allowFailure: true
  })
  if (has.exitCode !== 0) {
    throw new HostError(
      `gpu-check-image ${image} is not on this host and offline-debs means nothing is pulled: load it first (docker load).`
    )
  }
}

/**
 * The GPUs the check container gets (pure): all, or only the healthy ones when the health gate
 * keeps some from jobs (gpu-health: fail), with how many it keeps.
 */
export function checkDevices(health: GpuHealthResult | undefined): {gpus: string; kept: number} {
  const all = Object.entries(health?.gpus ?? {})
  const kept = health?.enforced ? all.filter(([, h]) => !h.healthy).length : 0
  if (kept === 0) return {gpus: 'all', kept}
  const healthy = all.filter(([, h]) => h.healthy).map(([uuid]) => uuid)
  return {gpus: `"device=${healthy.join(',')}"`, kept}
}

/**
 * The GPU check: nvidia-smi on the host, then `docker run --gpus all IMAGE nvidia-smi` (only the
 * healthy GPUs when the health gate keeps some). With
 * gpu-check: auto it runs when a driver is present and this phase changed something (a rerun on a
 * ready host starts no container); with true, on every run.
 */
export async function checkGpus(_plan: DaemonPlan, ctx: Ctx, changed: boolean): Promise<void> {
  const {inputs, runner} = ctx
  const gpu = await detectGpu(runner)
  const wanted =
    inputs.gpuCheck === 'true' || (inputs.gpuCheck === 'auto' && gpu !== undefined && changed)
  if (!wanted) return
  if (!gpu) {
    throw new HostError(
      'gpu-check is true but no NVIDIA driver answers on this host (nvidia-smi failed or is missing).'
    )
  }
  const image = checkImage(ctx, gpu)
  await requireLocalImage(ctx, image)
  // The health gate ran first: a GPU it keeps from jobs is kept from the check too.
  const {gpus, kept} = checkDevices(ctx.outputs.gpuHealth)
  const r = await runner.run(['docker', 'run', '--rm', '--gpus', gpus, image, 'nvidia-smi', '-L'], {
    root: true,
    allowFailure: true,
    timeoutSeconds: 600
  })
  if (r.exitCode !== 0) {
    const out = `${r.stderr}\n${r.stdout}`
    const fix = explainGpuFailure(out)
    throw new HostError(
      `The GPU check container failed: ${tailLines(out, 5)}${fix ? `\nFix: ${fix}` : ''}`
    )
  }
  const seen = r.stdout.split('\n').filter(l => l.startsWith('GPU ')).length
  core.info(`GPU check: a container (${image}) sees ${seen} GPU(s):\n${r.stdout.trim()}`)
  if (seen < gpu.gpus.length - kept) {
    ctx.warn(
      `The GPU check container sees ${seen} of the host's ${gpu.gpus.length - kept} GPUs${kept > 0 ? ' the health gate let through' : ''}.`
    )
  }
}
