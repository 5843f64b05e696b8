/** The GPU device fix as changes to make, and how the daemon phase plans it (table tests). */
import {describe, expect, it} from '@jest/globals'
import {
  DEV_CHAR_RULE_TEXT,
  parseCdiRecord,
  planDeviceFix,
  type DeviceFixFacts
} from '../../src/phases/daemon/device-fix.js'
import {planDaemon, type DaemonFacts} from '../../src/phases/daemon/plan.js'
import {serialiseDaemonConfig} from '../../src/phases/daemon/daemon-config.js'
import {cdiNames, declaredNames, declaresNvidiaGpus} from '../../src/phases/gpus/cdi.js'
import {settingsWith, type RawOverrides} from './inputs-helper.js'
import {readFileSync} from 'node:fs'

const SHA = 'a'.repeat(64)
/** Docker 26.1 with systemd's cgroup driver, CDI off, nothing of the fix in place. */
const BARE: DeviceFixFacts = {
  systemd: true,
  cgroupDriver: 'systemd',
  dockerVersion: '26.1.5+dfsg1',
  cdiOn: false,
  driver: '550.54.15',
  devCharLinks: false,
  toolkitSpec: false
}
/** The same host once the fix is in place. */
const READY: DeviceFixFacts = {
  ...BARE,
  cdiOn: true,
  devCharLinks: true,
  rule: DEV_CHAR_RULE_TEXT,
  specSha256: SHA,
  record: {driver: '550.54.15', toolkit: '1.17.8-1', sha256: SHA}
}
const TOOLKIT = {version: '1.17.8-1', installing: false}
const kinds = (p: {actions: {kind: string}[]}) => p.actions.map(a => a.kind)

describe('planDeviceFix', () => {
  it.each([
    [
      'Docker 26.1, systemd driver, auto',
      BARE,
      'auto',
      'cdi',
      true,
      ['cdi-spec', 'dev-char-rule', 'dev-char-links']
    ],
    ['the same host ready', READY, 'auto', 'cdi', true, []],
    ['a new driver', {...READY, driver: '570.86.15'}, 'auto', 'cdi', true, ['cdi-spec']],
    [
      'a spec changed since it was generated (the administrator regenerated it)',
      {...READY, specSha256: 'b'.repeat(64)},
      'auto',
      'cdi',
      true,
      []
    ],
    [
      "the administrator's regenerated spec and a new driver",
      {...READY, specSha256: 'b'.repeat(64), driver: '570.86.15'},
      'auto',
      'cdi',
      true,
      []
    ],
    ["the administrator's spec, no record", {...READY, record: undefined}, 'auto', 'cdi', true, []],
    [
      'the spec this action generated removed',
      {...READY, specSha256: undefined},
      'auto',
      'cdi',
      true,
      ['cdi-spec']
    ],
    [
      'a new toolkit',
      {...READY, record: {...READY.record!, toolkit: '1.17.7-1'}},
      'auto',
      'cdi',
      true,
      ['cdi-spec']
    ],
    [
      'links gone after a driver reload',
      {...READY, devCharLinks: false},
      'auto',
      'cdi',
      true,
      ['dev-char-links']
    ],
    ['a rule edited by hand', {...READY, rule: '# mine\n'}, 'auto', 'cdi', true, []],
    ['the rule removed', {...READY, rule: undefined}, 'auto', 'cdi', true, ['dev-char-rule']],
    [
      'Docker 20.10, systemd driver',
      {...BARE, dockerVersion: '20.10.24+dfsg1'},
      'auto',
      'dev-char-symlinks',
      false,
      ['dev-char-rule', 'dev-char-links']
    ],
    [
      'nvidia-cdi false on Docker 26.1',
      BARE,
      'false',
      'dev-char-symlinks',
      false,
      ['dev-char-rule', 'dev-char-links']
    ],
    ['the cgroupfs driver', {...BARE, cgroupDriver: 'cgroupfs'}, 'auto', 'none', false, []],
    [
      'the cgroupfs driver, nvidia-cdi true',
      {...BARE, cgroupDriver: 'cgroupfs'},
      'true',
      'cdi',
      true,
      ['cdi-spec']
    ],
    ['no systemd', {...BARE, systemd: false}, 'auto', 'none', false, []],
    [
      'the toolkit keeps its own spec (1.18 nvidia-cdi-refresh)',
      {...BARE, toolkitSpec: true},
      'auto',
      'cdi',
      true,
      ['dev-char-rule', 'dev-char-links']
    ],
    [
      "the toolkit keeps its own spec beside this action's (recorded)",
      {...READY, toolkitSpec: true},
      'auto',
      'cdi',
      true,
      ['cdi-spec-remove']
    ],
    [
      "the toolkit keeps its own spec beside the administrator's",
      {...READY, toolkitSpec: true, record: undefined},
      'auto',
      'cdi',
      true,
      []
    ]
  ] as const)('%s', (_name, facts, cdi, fix, on, actions) => {
    const plan = planDeviceFix(facts, cdi, TOOLKIT)
    expect(plan.fix).toBe(fix)
    expect(plan.cdi).toBe(on)
    expect(kinds(plan)).toEqual(actions)
  })

  it('says why CDI stays off where it is the fix and nvidia-cdi is false', () => {
    expect(planDeviceFix(BARE, 'false', TOOLKIT).warnings).toEqual([
      'nvidia-cdi is false: containers given GPUs with --gpus still lose them on systemctl daemon-reload; give them the /dev/nvidia* nodes with --device too, or set nvidia-cdi: auto and use --device nvidia.com/gpu=<uuid> (the cdi-devices output).'
    ])
  })

  it('leaves CDI off under auto when daemon-config sets features.cdi false', () => {
    const plan = planDeviceFix(BARE, 'auto', TOOLKIT, 'config')
    expect(plan.cdi).toBe(false)
    expect(plan.fix).toBe('dev-char-symlinks')
    expect(plan.warnings).toEqual([
      'nvidia-cdi auto: daemon-config sets features.cdi false, so only the /dev/char links are made; containers given GPUs with --gpus still lose them on systemctl daemon-reload; give them the /dev/nvidia* nodes with --device too.'
    ])
  })

  it.each([
    [
      'a spec the administrator made',
      {...READY, record: undefined},
      "CDI: /etc/cdi/nvidia.yaml was not generated by this action (or was changed since): it is the administrator's and is used as it is; remove it to let this action generate and keep it current."
    ],
    [
      'a rule edited by hand',
      {...READY, rule: '# mine\n'},
      "GPU device fix: /lib/udev/rules.d/71-nvidia-dev-char.rules is not the rule this action writes (edited by hand?): it is kept as it is; remove it to let this action write NVIDIA's rule."
    ]
  ])('keeps %s, in one line', (_name, facts, warning) => {
    const plan = planDeviceFix(facts, 'auto', TOOLKIT)
    expect(plan.actions).toEqual([])
    expect(plan.warnings).toEqual([warning])
  })

  it.each([
    ['installs 1.18 (its nvidia-cdi-refresh writes the spec)', '1.18.0-1', true, true, false],
    ['installs 1.17', '1.17.8-1', true, true, true],
    ['has 1.18 without its spec (no refresh unit)', '1.18.0-1', false, true, true],
    [
      'installs 1.18 on a host without systemd (no refresh unit runs)',
      '1.18.0-1',
      true,
      false,
      true
    ]
  ])('a toolkit that %s', (_name, version, installing, systemd, generates) => {
    const plan = planDeviceFix({...BARE, systemd}, 'true', {version, installing})
    expect(kinds(plan).includes('cdi-spec')).toBe(generates)
  })

  it('generates no spec without a driver, and says so', () => {
    const plan = planDeviceFix({...BARE, driver: undefined}, 'auto', TOOLKIT)
    expect(kinds(plan)).toEqual(['dev-char-rule', 'dev-char-links'])
    expect(plan.warnings[0]).toMatch(/^CDI: no NVIDIA driver answers/)
  })

  it('asks for a newer toolkit before 1.12 (no nvidia-ctk) and changes nothing', () => {
    const plan = planDeviceFix(BARE, 'auto', {version: '1.11.0-1', installing: false})
    expect(plan.fix).toBe('upgrade-toolkit')
    expect(plan.actions).toEqual([])
    expect(plan.cdi).toBe(false)
  })

  it('plans for a toolkit this run installs', () => {
    expect(kinds(planDeviceFix(BARE, 'auto', {installing: true}))).toEqual([
      'cdi-spec',
      'dev-char-rule',
      'dev-char-links'
    ])
  })

  it('reads back only a whole record', () => {
    expect(parseCdiRecord('{"driver":"1","toolkit":"2","sha256":"3"}\n')).toEqual({
      driver: '1',
      toolkit: '2',
      sha256: '3'
    })
    expect(parseCdiRecord('{"driver":"1"}')).toBeUndefined()
    expect(parseCdiRecord('not json')).toBeUndefined()
    expect(parseCdiRecord(undefined)).toBeUndefined()
  })
})

const inputs = (o: RawOverrides = {}) => settingsWith(o, {}).daemon
const CONFIG = {
  'exec-opts': ['native.cgroupdriver=systemd'],
  runtimes: {nvidia: {path: 'nvidia-container-runtime', args: []}},
  'default-runtime': 'nvidia'
}
const INSTALLED = new Map(
  [
    'nvidia-container-toolkit',
    'nvidia-container-toolkit-base',
    'libnvidia-container-tools',
    'libnvidia-container1'
  ].map(n => [n, '1.17.8-1'])
)

function daemonFacts(devices: DeviceFixFacts, cdiSpecDirs: string[] = []): DaemonFacts {
  return {
    text: serialiseDaemonConfig(CONFIG),
    config: CONFIG,
    gpu: {driverVersion: '550.54.15', gpus: [{index: 0, name: 'NVIDIA H100'}]},
    installed: INSTALLED,
    held: new Set(),
    loaded: {
      runtimes: ['nvidia', 'runc'],
      defaultRuntime: 'nvidia',
      mirrors: [],
      insecure: [],
      liveRestore: false,
      debug: false,
      labels: [],
      swarm: false,
      cgroupDriver: 'systemd',
      serverVersion: '26.1.5+dfsg1',
      cdiSpecDirs
    },
    debs: [],
    provided: new Set(),
    workloads: [],
    devices
  }
}

describe('the daemon phase applies the fix', () => {
  it('generates the spec and makes the links before CDI is turned on by one restart; no daemon-reload', () => {
    const plan = planDaemon(daemonFacts(BARE), inputs())
    expect(plan.actions.map(a => a.kind)).toEqual([
      'cdi-spec',
      'dev-char-rule',
      'dev-char-links',
      'write-config',
      'restart'
    ])
    expect(plan.diff).toEqual(['+ features: {"cdi":true}'])
    expect(plan.deviceFix?.fix).toBe('cdi')
  })

  it('changes nothing on a host where the fix is in place and CDI is on', () => {
    const plan = planDaemon(daemonFacts(READY, ['/etc/cdi', '/var/run/cdi']), inputs())
    expect(plan.actions).toEqual([])
    expect(plan.deviceFix?.fix).toBe('cdi')
  })

  it('does not write features.cdi under auto where the daemon has CDI on already (Docker 28 with CDI on by default)', () => {
    const plan = planDaemon(
      daemonFacts({...BARE, cdiOn: true}, ['/etc/cdi', '/var/run/cdi']),
      inputs()
    )
    expect(plan.actions.map(a => a.kind)).toEqual(['cdi-spec', 'dev-char-rule', 'dev-char-links'])
  })

  it('removes its own spec where the toolkit keeps one, and says so in the steps', () => {
    const plan = planDaemon(
      daemonFacts({...READY, toolkitSpec: true}, ['/etc/cdi', '/var/run/cdi']),
      inputs()
    )
    expect(plan.actions.map(a => a.kind)).toEqual(['cdi-spec-remove'])
    expect(plan.steps[0].description).toBe(
      'remove /etc/cdi/nvidia.yaml and its record /var/lib/docker-gpu-setup/cdi-spec.json: the toolkit keeps its own spec, /var/run/cdi/nvidia.yaml (nvidia-cdi-refresh)'
    )
  })

  describe('where a restart would stop containers live-restore cannot keep (swarm mode)', () => {
    const swarm = (devices: DeviceFixFacts): DaemonFacts => {
      const f = daemonFacts(devices)
      return {...f, loaded: {...f.loaded!, swarm: true}, workloads: ['web']}
    }

    it('auto makes the /dev/char links only, restarts nothing, and says why', () => {
      const plan = planDaemon(swarm(BARE), inputs())
      expect(plan.actions.map(a => a.kind)).toEqual(['dev-char-rule', 'dev-char-links'])
      expect(plan.deviceFix?.fix).toBe('dev-char-symlinks')
      expect(plan.warnings.join('\n')).toContain(
        'nvidia-cdi auto: turning CDI on (features.cdi) needs a restart of Docker, refused here'
      )
    })

    it('auto with allow-restart: true turns CDI on', () => {
      const plan = planDaemon(swarm(BARE), inputs({'allow-restart': 'true'}))
      expect(plan.actions.map(a => a.kind)).toContain('restart')
      expect(plan.deviceFix?.fix).toBe('cdi')
    })

    it('nvidia-cdi true is still refused before any change', () => {
      expect(() => planDaemon(swarm(BARE), inputs({'nvidia-cdi': 'true'}))).toThrow(
        /needs a restart of Docker/
      )
    })
  })

  it('generates the spec after installing the toolkit', () => {
    const plan = planDaemon(
      {...daemonFacts(BARE), installed: new Map()},
      inputs({'nvidia-toolkit-version': '1.17.8-1'})
    )
    const kinds = plan.actions.map(a => a.kind)
    expect(kinds.indexOf('cdi-spec')).toBeGreaterThan(kinds.indexOf('install-toolkit'))
    expect(kinds).not.toContain('daemon-reload')
  })
})

describe('CDI names of leased GPUs', () => {
  const other = readFileSync('__fixtures__/cdi/nvidia-ctk-spec.yaml', 'utf8')
  const nvidia = other.replace('kind: example.com/device', 'kind: nvidia.com/gpu')

  it('knows a spec of NVIDIA GPUs as nvidia-ctk writes it (YAML and JSON), and no other', () => {
    expect(declaresNvidiaGpus(other)).toBe(false)
    expect(declaresNvidiaGpus(nvidia)).toBe(true)
    expect(
      declaresNvidiaGpus('{"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": []}')
    ).toBe(true)
  })

  it('reads the device names of NVIDIA specs only', () => {
    expect(declaredNames(nvidia)).toEqual(['0', 'all'])
    expect(declaredNames(other)).toEqual([])
    expect(
      declaredNames('{"kind":"nvidia.com/gpu","devices":[{"name":"GPU-a","containerEdits":{}}]}')
    ).toEqual(['GPU-a'])
  })

  const gpus = [
    {index: 0, uuid: 'GPU-a'},
    {index: 1, uuid: 'GPU-b'}
  ]
  it.each([
    [
      'by UUID where the spec does',
      ['0', '1', 'GPU-a', 'GPU-b', 'all'],
      ['nvidia.com/gpu=GPU-a', 'nvidia.com/gpu=GPU-b'],
      []
    ],
    [
      'by index where the spec has no UUID names (toolkits before 1.15)',
      ['0', '1', 'all'],
      ['nvidia.com/gpu=0', 'nvidia.com/gpu=1'],
      []
    ],
    ['not at all from a spec with only all', ['all'], [], [0, 1]],
    [
      'not the GPU a spec older than a swap lacks',
      ['0', 'GPU-a', 'GPU-old', 'all'],
      ['nvidia.com/gpu=GPU-a'],
      [1]
    ]
  ])('names each leased GPU %s', (_name, declared, names, missing) => {
    const got = cdiNames(gpus, new Set(declared))
    expect(got.names).toEqual(names)
    expect(got.missing.map(g => g.index)).toEqual(missing)
  })

  it('names the GPUs of a spec nvidia-ctk wrote by what it declares', () => {
    expect(cdiNames(gpus, new Set(declaredNames(nvidia)))).toEqual({
      names: ['nvidia.com/gpu=0'],
      missing: [gpus[1]]
    })
  })
})
