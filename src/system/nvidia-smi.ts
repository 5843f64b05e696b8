/** Where nvidia-smi is on this host (/usr/bin, /usr/local/bin, WSL2's /usr/lib/wsl/lib), found by looking, not by running it. */
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
