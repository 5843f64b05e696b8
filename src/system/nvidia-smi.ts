/** Where nvidia-smi is on this host (/usr/bin, /usr/local/bin, WSL2's /usr/lib/wsl/lib), and the GPUs the driver has (/proc/driver/nvidia/gpus), found by looking, not by running anything. */
import {promises as fs} from 'node:fs'
import {exists} from './files.js'

/**
 * Where nvidia-smi lives: the driver's packages put it in /usr/bin, a runfile install in
 * /usr/local/bin, and WSL2 maps the Windows driver's copy into /usr/lib/wsl/lib (not on PATH).
 */
export const NVIDIA_SMI_PATHS = [
  '/usr/bin/nvidia-smi',
  '/usr/local/bin/nvidia-smi',
  '/usr/lib/wsl/lib/nvidia-smi'
]

/** The path of nvidia-smi on this host, or undefined when there is no NVIDIA driver to ask. */
export async function findNvidiaSmi(): Promise<string | undefined> {
  for (const p of NVIDIA_SMI_PATHS) if (await exists(p)) return p
  return undefined
}

/** One folder per GPU the driver has, named by its PCI address (0000:3b:00.0). */
const DRIVER_GPUS = '/proc/driver/nvidia/gpus'

/**
 * The driver's GPUs by PCI address, sorted: nvidia-smi's index order (PCI order). Undefined when
 * the folder cannot be read (no driver, or a container without it).
 */
export async function driverGpuAddresses(): Promise<string[] | undefined> {
  const names = await fs.readdir(DRIVER_GPUS).catch(() => undefined)
  return names?.filter(n => /^[0-9a-f]+:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i.test(n)).sort()
}
