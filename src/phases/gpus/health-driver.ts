/**
 * The loaded NVIDIA kernel module and the user-space library (pure): /proc/driver/nvidia/version of
 * the proprietary and the open module, and nvidia-smi's version-mismatch message, which names only
 * the library (`NVML library version: 580.178`).
 */

/** Where the loaded module says its version. */
export const MODULE_VERSION_FILE = '/proc/driver/nvidia/version'

/** The loaded kernel module. */
export interface ModuleVersion {
  version: string
  /** NVIDIA's open kernel module (`NVIDIA UNIX Open Kernel Module for x86_64`). */
  open: boolean
}

const MODULE =
  /^NVRM version: NVIDIA UNIX (?:(Open) Kernel Module for \S+|\S+ Kernel Module)\s+(\d+(?:\.\d+)+)/m

/** Parses /proc/driver/nvidia/version; undefined when it is not that file's form. */
export function parseModuleVersion(text: string | undefined): ModuleVersion | undefined {
  const m = MODULE.exec(text ?? '')
  return m ? {version: m[2], open: m[1] !== undefined} : undefined
}

/** nvidia-smi's words when the library and the loaded module differ. */
const MISMATCH = /Failed to initialize NVML: Driver\/library version mismatch/i
const LIBRARY = /NVML library version: (\d+(?:\.\d+)+)/i

/** The library's version when nvidia-smi reports a version mismatch; undefined otherwise. */
export function parseMismatch(output: string): {library?: string} | undefined {
  if (!MISMATCH.test(output)) return undefined
  return {library: LIBRARY.exec(output)?.[1]}
}

/** The one line a mismatch becomes: both versions, and that only a reboot loads the new module. */
export function mismatchText(
  library: string | undefined,
  module: ModuleVersion | undefined
): string {
  const lib = library ? `user-space library (NVML) ${library}` : 'the user-space library (NVML)'
  const mod = module
    ? `loaded kernel module ${module.version}${module.open ? ' (open)' : ''}`
    : `the loaded kernel module (${MODULE_VERSION_FILE} unreadable)`
  return `NVIDIA driver version mismatch: ${lib} but ${mod} (the driver's packages were upgraded under the running module): reboot needed; every GPU job fails until then`
}
