/**
 * Keeping unattended upgrades off the NVIDIA driver and container toolkit (pure): the apt.conf
 * fragment this action owns, with unattended-upgrades' Package-Blacklist (regular expressions
 * matched from the start of a package's name), and the plan that writes or removes it. apt's own
 * commands do not read that list: a manual `apt-get upgrade` still upgrades these packages.
 */
import type {PhasePlan} from '../pipeline.js'

/** The fragment this action owns; its name sorts after Debian's and Ubuntu's 50unattended-upgrades. */
export const HOLD_FRAGMENT = '/etc/apt/apt.conf.d/51docker-gpu-setup-hold-nvidia'

/**
 * Package names unattended upgrades leave alone: the driver's user-space libraries and DKMS
 * modules as NVIDIA's, Ubuntu's and Debian's repositories name them, and the container toolkit
 * (nvidia-container-toolkit, its -base, libnvidia-container1 and -tools). Ubuntu's prebuilt
 * modules (linux-modules-nvidia-*) are left out: they come with each new kernel, and holding
 * them back would boot that kernel without its NVIDIA module.
 */
export const HELD_PATTERNS = [
  '^nvidia-',
  '^libnvidia-',
  '^libcuda1',
  '^libnvcuvid',
  '^libnvoptix',
  '^cuda-drivers',
  '^xserver-xorg-video-nvidia',
  '^firmware-nvidia-'
]

/** dpkg-query patterns of the installed packages that make this an NVIDIA host. */
export const NVIDIA_PACKAGE_GLOBS = ['nvidia-*', 'libnvidia-*', 'cuda-drivers*', 'libcuda1']

/** The fragment's whole text. */
export function holdFragment(): string {
  return [
    '// Written by docker-gpu-setup (hold-nvidia-driver: true); removed by hold-nvidia-driver: false.',
    "// unattended-upgrades leaves the NVIDIA driver and container toolkit alone: a new driver's",
    '// libraries under the loaded kernel module fail every GPU job until a reboot. apt itself does',
    '// not read this list: upgrade these packages by hand, then reboot.',
    'Unattended-Upgrade::Package-Blacklist {',
    ...HELD_PATTERNS.map(p => `    "${p}";`),
    '};',
    ''
  ].join('\n')
}

/** What detection found. */
export interface DriverHoldFacts {
  hold: boolean
  /** The fragment's text; undefined when absent. */
  fragment?: string
  /** Installed NVIDIA packages (name → version). */
  nvidia: ReadonlyMap<string, string>
  /** /proc/driver/nvidia/version exists: a driver is loaded. */
  driverLoaded: boolean
}

/** The plan: write the fragment, remove it, or nothing. */
export interface DriverHoldPlan extends PhasePlan {
  action: 'write' | 'remove' | 'none'
}

/** Writes the fragment on an NVIDIA host when asked (and it differs); removes it when not asked. */
export function planDriverHold(f: DriverHoldFacts): DriverHoldPlan {
  const nvidiaHost = f.driverLoaded || f.nvidia.size > 0
  const found =
    (f.fragment === undefined ? 'no hold' : 'held') +
    (nvidiaHost ? ` (${f.nvidia.size} NVIDIA packages)` : ' (no NVIDIA driver or toolkit)')
  if (f.hold && nvidiaHost && f.fragment !== holdFragment()) {
    return {
      found,
      steps: [{description: `keep unattended-upgrades off the NVIDIA packages (${HOLD_FRAGMENT})`}],
      warnings: [],
      action: 'write'
    }
  }
  if (!f.hold && f.fragment !== undefined) {
    return {
      found,
      steps: [
        {
          description: `let unattended-upgrades upgrade the NVIDIA packages again (remove ${HOLD_FRAGMENT})`
        }
      ],
      warnings: [],
      action: 'remove'
    }
  }
  return {found, steps: [], warnings: [], action: 'none'}
}
