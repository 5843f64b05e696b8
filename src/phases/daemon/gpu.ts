/** The NVIDIA driver as nvidia-smi shows it, and what follows for the GPU check (pure). */

export interface GpuInfo {
  driverVersion: string
  /** Highest CUDA version the driver supports; undefined on old drivers that do not print it. */
  cudaVersion?: string
  gpus: {index: number; name: string}[]
}

/**
 * Parses plain `nvidia-smi` output (one call gives driver, CUDA and GPUs). Handles the classic
 * header ("Driver Version", "CUDA Version") and drivers 610+ ("KMD Version", "CUDA UMD Version").
 * Returns undefined when nvidia-smi reports no driver or no device.
 */
export function parseNvidiaSmi(text: string): GpuInfo | undefined {
  const driver = /(?:Driver|KMD) Version:\s*([\d.]+)/.exec(text)
  if (!driver) return undefined
  const cuda = /CUDA (?:UMD )?Version:\s*([\d.]+)/.exec(text)
  const gpus: GpuInfo['gpus'] = []
  for (const line of text.split('\n')) {
    const m = /^\|\s+(\d+)\s+(.+?)\s+(?:On|Off)\s+\|/.exec(line)
    if (m) gpus.push({index: Number(m[1]), name: m[2]})
  }
  return {driverVersion: driver[1], cudaVersion: cuda?.[1], gpus}
}

/** CUDA versions with a `nvidia/cuda:<v>-base-ubuntu22.04` image, newest first. */
export const CHECK_IMAGE_CUDA = ['12.8.1', '12.6.3', '12.4.1', '12.2.2', '12.0.1', '11.8.0']

function majorMinor(v: string): number {
  const [major, minor] = v.split('.').map(Number)
  return major * 1000 + (minor || 0)
}

/**
 * The check image for a driver: the newest CUDA base image not above what the driver supports
 * (an image whose CUDA exceeds the driver's fails with "forward compatibility"). Undefined when
 * even the oldest is too new, or the driver does not say.
 */
export function checkImageFor(cudaVersion: string | undefined): string | undefined {
  if (cudaVersion === undefined) return undefined
  const v = CHECK_IMAGE_CUDA.find(c => majorMinor(c) <= majorMinor(cudaVersion))
  return v ? `nvidia/cuda:${v}-base-ubuntu22.04` : undefined
}

/** Known GPU-container failures and the fix to print with them. */
const KNOWN_FAILURES: [RegExp, string][] = [
  [
    /could not select device driver/,
    'Docker does not know the NVIDIA runtime: the NVIDIA container toolkit is missing or Docker was not restarted after it was configured.'
  ],
  [
    /unknown or invalid runtime name: nvidia/,
    "daemon.json has no 'nvidia' runtime, or Docker was not restarted after it was added."
  ],
  [
    /libnvidia-ml\.so\.1/,
    'The container cannot load the driver library: no NVIDIA driver on the host, or Docker is installed as a snap (remove it: sudo snap remove docker, and install Docker from apt).'
  ],
  [
    /forward compatibility|CUDA driver version is insufficient|unsatisfied condition: cuda>=/,
    "The image's CUDA is newer than the driver supports: set gpu-check-image to an older nvidia/cuda base image, or update the driver."
  ]
]

/** The fix for a GPU-check failure, when it is a known one. */
export function explainGpuFailure(output: string): string | undefined {
  return KNOWN_FAILURES.find(([re]) => re.test(output))?.[1]
}
