/**
 * Whether running containers lose their GPUs on `systemctl daemon-reload`, and NVIDIA's fix for
 * this host (pure). With the systemd cgroup driver, systemd rewrites a container's device rules
 * from what runc told it on every daemon-reload: a GPU granted by the toolkit's legacy hook
 * (written straight into the cgroup) is lost, and so is a device in the container's spec whose
 * /dev/char/MAJOR:MINOR link is missing (systemd names devices by that link). Containers then fail
 * with `Failed to initialize NVML: Unknown Error` (NVIDIA/nvidia-container-toolkit issue 48;
 * NVIDIA's troubleshooting page lists the fixes). The e2e test device-reload shows both losses
 * with a stand-in device node.
 */

/** What decides the risk. */
export interface DeviceLossFacts {
  /** systemd runs the host (daemon-reload exists). */
  systemd: boolean
  /** `docker info`'s CgroupDriver; undefined when Docker does not answer. */
  cgroupDriver?: string
  dockerVersion?: string
  /** nvidia-container-toolkit's package version; undefined when not installed. */
  toolkitVersion?: string
  /** nvidia-container-runtime's mode (config.toml `mode`): legacy, auto, cdi, csv. */
  runtimeMode?: string
  /** Every /dev/nvidia* character device has its /dev/char/MAJOR:MINOR link. */
  devCharLinks: boolean
  /** Docker has CDI on and an NVIDIA spec to inject GPUs from (`--device nvidia.com/gpu=…`). */
  cdiReady?: boolean
}

/** NVIDIA's fix: CDI (devices in the container's spec) with the /dev/char links, or the links alone. */
export type DeviceLossFix = 'cdi' | 'dev-char-symlinks' | 'upgrade-toolkit'

/** The verdict: at risk or not, why, and the fix for this host. */
export interface DeviceLossVerdict {
  atRisk: boolean
  why: string
  fix?: DeviceLossFix
  /**
   * The fix is in place: containers given GPUs in their spec (CDI names, or the /dev/nvidia*
   * nodes with --device) keep them; a GPU granted by the legacy hook alone (--gpus) still does not.
   */
  applied?: boolean
}

/** Docker reads CDI specs (features.cdi) from 25.0. */
const CDI_DOCKER = 25
/** `nvidia-ctk cdi generate` and `nvidia-ctk system create-dev-char-symlinks` came in 1.12. */
const NVIDIA_CTK_SINCE = '1.12.0'
/** Toolkit 1.18 keeps its own spec (nvidia-cdi-refresh.service, regenerated on driver or toolkit changes). */
const CDI_REFRESH_SINCE = '1.18.0'

/** The toolkit's CLI, where its packages put it (NVIDIA's udev rule names it by this path). */
export const NVIDIA_CTK = '/usr/bin/nvidia-ctk'
/** Where the toolkit's runtime reads its settings (its `mode`, its isolation keys). */
export const RUNTIME_CONFIG = '/etc/nvidia-container-runtime/config.toml'

const major = (v: string | undefined): number => Number(/^(\d+)\./.exec(v ?? '')?.[1] ?? 0)

/** This Docker can read CDI specs (features.cdi): 25.0 and later (pure). */
export function dockerReadsCdi(version: string | undefined): boolean {
  return major(version) >= CDI_DOCKER
}

/** `1.17.8-1` before `1.12.0`? Compares the leading dotted numbers only (pure). */
function older(version: string, than: string): boolean {
  const nums = (v: string) => (/^[\d.]+/.exec(v)?.[0] ?? '').split('.').map(Number)
  const [a, b] = [nums(version), nums(than)]
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0)
  }
  return false
}

/** This toolkit version keeps its own CDI spec with nvidia-cdi-refresh (1.18 and later) (pure). */
export function toolkitRefreshesCdi(version: string): boolean {
  return !older(version, CDI_REFRESH_SINCE)
}

/** The verdict for this host (pure). */
export function deviceLoss(f: DeviceLossFacts): DeviceLossVerdict {
  if (!f.systemd) return {atRisk: false, why: 'no systemd: nothing reloads device rules'}
  if (f.cgroupDriver !== 'systemd') {
    return {
      atRisk: false,
      why: `the ${f.cgroupDriver ?? 'unknown'} cgroup driver: daemon-reload leaves containers' device rules alone`
    }
  }
  if (f.toolkitVersion === undefined) {
    return {atRisk: false, why: 'no NVIDIA container toolkit: no GPU is given to containers'}
  }
  const mode = f.runtimeMode ?? 'auto'
  if (mode === 'cdi' && f.devCharLinks) {
    return {
      atRisk: false,
      why: 'CDI mode with /dev/char links: the GPUs are in each container spec'
    }
  }
  const why =
    mode === 'cdi'
      ? 'the systemd cgroup driver, CDI mode, but /dev/nvidia* lack their /dev/char links'
      : `the systemd cgroup driver and the toolkit's ${mode} mode (GPUs granted by its hook, unknown to systemd)`
  if (older(f.toolkitVersion, NVIDIA_CTK_SINCE)) {
    return {atRisk: true, why, fix: 'upgrade-toolkit'}
  }
  if (mode !== 'cdi' && dockerReadsCdi(f.dockerVersion)) {
    return {atRisk: true, why, fix: 'cdi', applied: f.devCharLinks && f.cdiReady === true}
  }
  return {atRisk: true, why, fix: 'dev-char-symlinks', applied: f.devCharLinks}
}

/** What to do, in words, for the log and the docs. */
export function lossFixText(fix: DeviceLossFix): string {
  switch (fix) {
    case 'cdi':
      return 'use CDI: run this action with the NVIDIA runtime and nvidia-cdi: auto (the default) or true, which generates the spec (`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`, again after each driver change), turns features.cdi on and makes the /dev/char links (`nvidia-ctk system create-dev-char-symlinks --create-all`) with their udev rule; give containers --device nvidia.com/gpu=<uuid> (the cdi-devices output)'
    case 'dev-char-symlinks':
      return 'run this action with the NVIDIA runtime (it runs `nvidia-ctk system create-dev-char-symlinks --create-all` and writes its udev rule, 71-nvidia-dev-char.rules), and give containers the /dev/nvidia* nodes with --device as well as --gpus'
    case 'upgrade-toolkit':
      return 'upgrade nvidia-container-toolkit to 1.12 or later (nvidia-ctk), or switch Docker to the cgroupfs driver'
  }
}

/** The runtime's `mode = "…"` (config.toml); undefined when not set (the toolkit's default, auto). */
export function parseRuntimeMode(toml: string | undefined): string | undefined {
  return /^[ \t]*mode[ \t]*=[ \t]*"([\w-]+)"/m.exec(toml ?? '')?.[1]
}
