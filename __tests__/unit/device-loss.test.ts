/** Whether containers lose their GPUs on daemon-reload, and the fix for the host (table tests). */
import {describe, expect, it} from '@jest/globals'
import {
  deviceLoss,
  lossFixText,
  parseRuntimeMode,
  type DeviceLossFacts
} from '../../src/models/device-loss.js'

const host = (o: Partial<DeviceLossFacts> = {}): DeviceLossFacts => ({
  systemd: true,
  cgroupDriver: 'systemd',
  dockerVersion: '27.3.1',
  toolkitVersion: '1.17.8-1',
  runtimeMode: undefined,
  devCharLinks: false,
  ...o
})

describe('deviceLoss', () => {
  it.each([
    ['no systemd (WSL, a container runner)', host({systemd: false}), false, undefined],
    ['the cgroupfs driver', host({cgroupDriver: 'cgroupfs'}), false, undefined],
    ['Docker not answering', host({cgroupDriver: undefined}), false, undefined],
    ['no toolkit', host({toolkitVersion: undefined}), false, undefined],
    [
      'CDI mode with the /dev/char links',
      host({runtimeMode: 'cdi', devCharLinks: true}),
      false,
      undefined
    ],
    ['auto mode (legacy for discrete GPUs), Docker 27', host(), true, 'cdi'],
    ['legacy mode, Docker 25', host({runtimeMode: 'legacy', dockerVersion: '25.0.0'}), true, 'cdi'],
    [
      'legacy mode, Docker 24',
      host({runtimeMode: 'legacy', dockerVersion: '24.0.7'}),
      true,
      'dev-char-symlinks'
    ],
    [
      'legacy mode, Docker 20.10',
      host({dockerVersion: '20.10.24+dfsg1'}),
      true,
      'dev-char-symlinks'
    ],
    ['CDI mode without the links', host({runtimeMode: 'cdi'}), true, 'dev-char-symlinks'],
    [
      'a toolkit without nvidia-ctk (1.11)',
      host({toolkitVersion: '1.11.0-1'}),
      true,
      'upgrade-toolkit'
    ],
    [
      'toolkit 1.12.0',
      host({toolkitVersion: '1.12.0-1', dockerVersion: '24.0.0'}),
      true,
      'dev-char-symlinks'
    ]
  ] as const)('%s', (_what, facts, atRisk, fix) => {
    const v = deviceLoss(facts)
    expect(v.atRisk).toBe(atRisk)
    expect(v.fix).toBe(fix)
    expect(v.why).not.toBe('')
  })

  it('says the fix is in place: the links, and for CDI a spec Docker can inject from', () => {
    expect(deviceLoss(host()).applied).toBe(false)
    expect(deviceLoss(host({devCharLinks: true})).applied).toBe(false)
    expect(deviceLoss(host({devCharLinks: true, cdiReady: true})).applied).toBe(true)
    expect(deviceLoss(host({dockerVersion: '20.10.24', devCharLinks: true})).applied).toBe(true)
    expect(deviceLoss(host({toolkitVersion: '1.11.0-1', devCharLinks: true})).applied).toBe(
      undefined
    )
  })

  it('says what to do for each fix, naming nvidia-ctk', () => {
    expect(lossFixText('cdi')).toContain('nvidia-ctk cdi generate')
    expect(lossFixText('cdi')).toContain('create-dev-char-symlinks')
    expect(lossFixText('dev-char-symlinks')).toContain(
      'nvidia-ctk system create-dev-char-symlinks --create-all'
    )
    expect(lossFixText('upgrade-toolkit')).toContain('cgroupfs')
  })
})

describe('parseRuntimeMode', () => {
  it.each([
    ['[nvidia-container-runtime]\nlog-level = "info"\nmode = "legacy"\n', 'legacy'],
    [
      '[nvidia-container-runtime]\nmode = "cdi"\n\n[nvidia-container-runtime.modes.cdi]\ndefault-kind = "nvidia.com/gpu"\n',
      'cdi'
    ],
    // The toolkit's shipped file leaves it commented: the default, auto.
    [
      '[nvidia-container-runtime]\n#mode = "auto"\n#runtimes = ["docker-runc", "runc", "crun"]\n',
      undefined
    ],
    ['', undefined]
  ])('reads %j', (toml, mode) => {
    expect(parseRuntimeMode(toml)).toBe(mode)
  })
})
