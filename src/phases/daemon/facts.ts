/** What the summary shows for the daemon phase (pure): the runtimes that matter, the default, the GPUs. */
import type {Outputs} from '../../outputs.js'
import type {Fact} from '../pipeline.js'
import type {DaemonSettings} from './inputs.js'

/** nvidia-smi is asked when the runtime or the GPU check may want it; only then does "no driver" mean anything. */
export function looksForGpu(inputs: Pick<DaemonSettings, 'gpuRuntime' | 'gpuCheck'>): boolean {
  return inputs.gpuRuntime !== 'none' || inputs.gpuCheck === 'true'
}

/** What the daemon runs and the GPUs the driver shows. */
export interface DaemonState {
  /** Runtimes the running daemon lists; undefined when it does not answer. */
  runtimes?: readonly string[]
  defaultRuntime?: string
  /** nvidia-smi was asked (looksForGpu). */
  gpuLooked: boolean
  gpu?: Outputs['gpu']
  /** The fix that keeps containers' GPUs across systemctl daemon-reload, and why it is the one. */
  deviceFix?: {fix: string; why: string}
  /** How this run's daemon.json change reached the daemon. */
  change?: {
    how: 'reload' | 'restart' | 'start'
    restartKeys: readonly string[]
    downtime: number
    protectedContainers: readonly string[]
  }
}

/** containerd's own shims, which every daemon lists and nobody chooses. */
const BUILT_IN = /^io\.containerd\./

/** The daemon's facts: "runtimes nvidia, runc", "default nvidia", "2 GPU(s)", "driver 550.54.15 (CUDA 12.4)". */
export function daemonFacts(s: DaemonState): Fact[] {
  const facts: Fact[] =
    s.runtimes === undefined
      ? [{label: 'running daemon', value: null}]
      : [
          {label: 'runtimes', value: s.runtimes.filter(r => !BUILT_IN.test(r))},
          {label: 'default', value: s.defaultRuntime ?? 'runc'}
        ]
  if (s.gpu) {
    facts.push(
      {label: 'GPU(s)', value: s.gpu.count},
      {
        label: 'driver',
        value: s.gpu.driverVersion,
        ...(s.gpu.cudaVersion ? {note: `CUDA ${s.gpu.cudaVersion}`} : {})
      }
    )
  } else if (s.gpuLooked) facts.push({label: 'NVIDIA driver', value: null})
  if (s.deviceFix) {
    facts.push({label: 'GPU device fix', value: s.deviceFix.fix, note: s.deviceFix.why})
  }
  if (s.change) facts.push(...changeFacts(s.change))
  return facts
}

/** "applied by reload, API answered throughout" or "applied by restart (log-opts), API down 1.2 s, 2 container(s) kept running". */
function changeFacts(c: NonNullable<DaemonState['change']>): Fact[] {
  const facts: Fact[] = [
    {
      label: 'applied by',
      value: c.how,
      ...(c.restartKeys.length > 0 ? {note: `needed by ${c.restartKeys.join(', ')}`} : {})
    },
    c.downtime === 0
      ? {label: 'API answered throughout', value: true}
      : {label: 'API down', value: `${c.downtime.toFixed(2)} s`}
  ]
  if (c.protectedContainers.length > 0) {
    facts.push({label: 'kept running', value: c.protectedContainers.length, note: 'live-restore'})
  }
  return facts
}
