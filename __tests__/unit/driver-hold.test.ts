/** Keeping unattended upgrades off the NVIDIA packages: the fragment and its plan. */
import {describe, expect, it} from '@jest/globals'
import {
  HELD_PATTERNS,
  HOLD_FRAGMENT,
  holdFragment,
  planDriverHold,
  type DriverHoldFacts
} from '../../src/phases/gpus/driver-hold.js'

const facts = (o: Partial<DriverHoldFacts> = {}): DriverHoldFacts => ({
  hold: true,
  nvidia: new Map([['nvidia-container-toolkit', '1.17.8-1']]),
  driverLoaded: false,
  ...o
})

/** unattended-upgrades' own test: Python's re.match of each entry against the package name. */
const blacklisted = (name: string): boolean => HELD_PATTERNS.some(p => new RegExp(p).test(name))

describe('the Package-Blacklist fragment', () => {
  it('is an apt list of unattended-upgrades, each entry quoted', () => {
    const text = holdFragment()
    expect(text).toMatch(/^\/\/ Written by docker-gpu-setup/)
    expect(text).toContain('Unattended-Upgrade::Package-Blacklist {\n    "^nvidia-";\n')
    expect(text.trimEnd().endsWith('};')).toBe(true)
    expect(HOLD_FRAGMENT).toMatch(/^\/etc\/apt\/apt\.conf\.d\/51/)
  })

  it.each([
    // NVIDIA's CUDA repository, Ubuntu's and Debian's driver packages, the container toolkit.
    'nvidia-driver-550',
    'nvidia-driver-550-open',
    'nvidia-dkms-535-server',
    'nvidia-kernel-common-550',
    'nvidia-utils-535',
    'nvidia-compute-utils-550',
    'libnvidia-compute-550',
    'libnvidia-gl-535',
    'libnvidia-ml1',
    'libcuda1',
    'libnvcuvid1',
    'cuda-drivers',
    'cuda-drivers-550',
    'xserver-xorg-video-nvidia-550',
    'firmware-nvidia-gsp',
    'nvidia-container-toolkit',
    'nvidia-container-toolkit-base',
    'libnvidia-container1',
    'libnvidia-container-tools'
  ])('keeps %s', name => {
    expect(blacklisted(name)).toBe(true)
  })

  it.each([
    'cuda-toolkit-12-4',
    'docker-ce',
    'linux-image-amd64',
    'libcudnn9-cuda-12',
    'nvtop',
    // A new kernel's prebuilt NVIDIA module must come with it.
    'linux-modules-nvidia-550-generic'
  ])('leaves %s to unattended-upgrades', name => {
    expect(blacklisted(name)).toBe(false)
  })
})

describe('planDriverHold', () => {
  it.each([
    ['an NVIDIA host without it', facts(), 'write'],
    ['a host whose fragment is outdated', facts({fragment: '// old\n'}), 'write'],
    ['a host already held', facts({fragment: holdFragment()}), 'none'],
    [
      'a loaded driver without packages (runfile)',
      facts({nvidia: new Map(), driverLoaded: true}),
      'write'
    ],
    ['a host without NVIDIA', facts({nvidia: new Map()}), 'none'],
    ['hold-nvidia-driver: false, held', facts({hold: false, fragment: holdFragment()}), 'remove'],
    ['hold-nvidia-driver: false, not held', facts({hold: false}), 'none']
  ] as const)('%s: %s', (_what, f, action) => {
    const plan = planDriverHold(f)
    expect(plan.action).toBe(action)
    expect(plan.steps).toHaveLength(action === 'none' ? 0 : 1)
  })
})
