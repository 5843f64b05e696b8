import {describe, expect, it} from '@jest/globals'
import type {JsonObject} from '../../src/docker/daemon-fragment.js'
import {
  DaemonConfigParseError,
  serialiseDaemonConfig
} from '../../src/phases/daemon/daemon-config.js'
import {errorLines, planDaemon, type DaemonFacts} from '../../src/phases/daemon/plan.js'
import {LEASE_RUNTIME_FILES} from '../../src/docker/lease-runtime.js'
import type {LoadedConfig} from '../../src/phases/daemon/reload.js'
import {
  nvidiaKeyring,
  nvidiaSourceLine,
  staleNvidiaSources
} from '../../src/phases/daemon/toolkit.js'
import {settingsWith, type RawOverrides} from './inputs-helper.js'

const inputs = (o: RawOverrides = {}) => settingsWith(o, {'/debs': 'dir'}).daemon

const TOOLKIT = new Map([
  ['nvidia-container-toolkit', '1.17.8-1'],
  ['nvidia-container-toolkit-base', '1.17.8-1'],
  ['libnvidia-container-tools', '1.17.8-1'],
  ['libnvidia-container1', '1.17.8-1']
])
const GPU = {
  driverVersion: '550.54.15',
  cudaVersion: '12.4',
  gpus: [{index: 0, name: 'NVIDIA H100'}]
}
const READY: JsonObject = {
  'log-driver': 'local',
  runtimes: {nvidia: {path: 'nvidia-container-runtime', args: []}},
  'default-runtime': 'nvidia'
}

/** What `docker info` shows of a running daemon with these runtimes. */
function loaded(
  runtimes: string[],
  defaultRuntime: string,
  o: Partial<LoadedConfig> = {}
): LoadedConfig {
  return {
    runtimes,
    defaultRuntime,
    mirrors: [],
    insecure: [],
    liveRestore: false,
    debug: false,
    labels: [],
    swarm: false,
    ...o
  }
}

function facts(o: Partial<DaemonFacts> = {}): DaemonFacts {
  const config = o.config ?? READY
  return {
    text: serialiseDaemonConfig(config),
    config,
    gpu: GPU,
    installed: TOOLKIT,
    held: new Set(),
    loaded: loaded(['nvidia', 'runc'], 'nvidia'),
    debs: [],
    provided: new Set(),
    workloads: [],
    ...o
  }
}
const kinds = (f: DaemonFacts, raw: RawOverrides = {}) =>
  planDaemon(f, inputs(raw)).actions.map(a => a.kind)

describe('planDaemon', () => {
  it('runner-hooks: install adds the gpu-lease runtime, every other key kept, by a reload; then nothing', () => {
    const plan = planDaemon(facts(), inputs({'runner-hooks': 'install'}))
    expect(plan.actions.map(a => a.kind)).toEqual(['write-config', 'reload'])
    const written = plan.actions[0]
    const config = JSON.parse(written.kind === 'write-config' ? written.text : '{}') as JsonObject
    expect(config).toEqual({
      ...READY,
      runtimes: {...(READY.runtimes as JsonObject), 'gpu-lease': {path: LEASE_RUNTIME_FILES.script}}
    })
    const after = facts({config, loaded: loaded(['gpu-lease', 'nvidia', 'runc'], 'nvidia')})
    expect(planDaemon(after, inputs({'runner-hooks': 'install'})).actions).toEqual([])
    expect(planDaemon(after, inputs()).actions).toEqual([])
  })

  it('plans nothing on a GPU host that is already right', () => {
    const plan = planDaemon(facts(), inputs())
    expect(plan.actions).toEqual([])
    expect(plan.nvidia).toBe(true)
    expect(plan.found).toBe(
      'NVIDIA driver 550.54.15 (CUDA 12.4), 1 GPU(s); toolkit 1.17.8-1; /etc/docker/daemon.json with 3 key(s); runtimes: nvidia, runc (default nvidia)'
    )
  })

  it('leaves GPUs alone without a driver (auto) and with gpu-runtime: none', () => {
    expect(
      kinds(
        facts({
          gpu: undefined,
          installed: new Map(),
          config: {},
          loaded: loaded(['runc'], 'runc')
        })
      )
    ).toEqual([])
    expect(
      kinds(facts({config: {}, loaded: loaded(['runc'], 'runc')}), {
        'gpu-runtime': 'none'
      })
    ).toEqual([])
  })

  it('installs the toolkit from the repository, writes the runtime and restarts once', () => {
    const plan = planDaemon(
      facts({
        installed: new Map(),
        config: {'log-driver': 'local'},
        loaded: loaded(['runc'], 'runc')
      }),
      inputs({'nvidia-toolkit-version': '1.17.8-1'})
    )
    expect(plan.actions.map(a => a.kind)).toEqual([
      'nvidia-repo',
      'apt-update',
      'install-toolkit',
      'hold',
      'write-config',
      'reload'
    ])
    expect(plan.diff).toEqual([
      '+ runtimes: {"nvidia":{"path":"nvidia-container-runtime","args":[]}}',
      '+ default-runtime: "nvidia"'
    ])
    const write = plan.actions.find(a => a.kind === 'write-config')
    expect(write).toMatchObject({
      existed: true,
      text: serialiseDaemonConfig({'log-driver': 'local', ...READY})
    })
  })

  it('replaces legacy nvidia-docker2 and reinstalls a toolkit at another pin', () => {
    const installed = new Map([...TOOLKIT, ['nvidia-docker2', '2.13.0-1']])
    expect(kinds(facts({installed}))).toEqual([
      'nvidia-repo',
      'apt-update',
      'remove-legacy',
      'install-toolkit'
    ])
    expect(kinds(facts(), {'nvidia-toolkit-version': '1.17.7-1'})).toEqual([
      'nvidia-repo',
      'apt-update',
      'install-toolkit',
      'hold'
    ])
  })

  it.each([
    ['a pin installs and holds all four', {}, {'nvidia-toolkit-version': '1.17.7-1'}, 4],
    [
      'an admin hold lifted for an install is put back',
      {held: new Set(['libnvidia-container1']), installed: new Map()},
      {},
      1
    ],
    [
      'a ready pinned toolkit without its hold gets it',
      {},
      {'nvidia-toolkit-version': '1.17.8-1'},
      4
    ],
    [
      'a ready pinned, held toolkit plans nothing',
      {held: new Set(TOOLKIT.keys())},
      {'nvidia-toolkit-version': '1.17.8-1'},
      0
    ],
    ['no pin, nothing installed anew: no hold', {}, {}, 0]
  ] as const)('holds: %s', (_what, f, raw, count) => {
    const plan = planDaemon(facts(f), inputs(raw))
    const hold = plan.actions.find(a => a.kind === 'hold')
    expect(hold?.kind === 'hold' ? hold.packages.length : 0).toBe(count)
  })

  it('installs the toolkit from offline-debs, naming what the folder lacks', () => {
    const raw = {'docker-source': 'offline', 'offline-debs': '/debs'}
    expect(() => planDaemon(facts({installed: new Map()}), inputs(raw))).toThrow(
      'offline-debs (/debs) lacks packages the NVIDIA container toolkit needs: libnvidia-container-tools, libnvidia-container1, nvidia-container-toolkit, nvidia-container-toolkit-base.'
    )
  })

  it('configures without a driver when gpu-runtime is nvidia, with a warning', () => {
    const plan = planDaemon(facts({gpu: undefined}), inputs({'gpu-runtime': 'nvidia'}))
    expect(plan.actions).toEqual([])
    expect(plan.warnings[0]).toContain('no NVIDIA driver answers')
  })

  it('reloads a daemon that has not loaded the file, without writing it', () => {
    expect(kinds(facts({loaded: loaded(['runc'], 'runc')}))).toEqual(['reload'])
  })

  it('writes and (re)starts a daemon that is not running', () => {
    expect(kinds(facts({config: {}, loaded: undefined}))).toEqual(['write-config', 'restart'])
  })

  it('names each key the inputs overwrite, and merges daemon-config', () => {
    const plan = planDaemon(
      facts({config: {...READY, 'default-runtime': 'runc', 'log-opts': {'max-size': '1m'}}}),
      inputs({'daemon-config': '{"log-opts": {"max-size": "50m", "max-file": "3"}}'})
    )
    expect(plan.warnings).toEqual([
      '/etc/docker/daemon.json: gpu-runtime changes default-runtime from "runc" to "nvidia"',
      '/etc/docker/daemon.json: daemon-config changes log-opts.max-size from "1m" to "50m"'
    ])
    expect(plan.diff).toEqual([
      '~ default-runtime: "runc" → "nvidia"',
      '~ log-opts.max-size: "1m" → "50m"',
      '+ log-opts.max-file: "3"'
    ])
  })

  it('adds the registry’s fragments to the lists, without contradicting the runtime', () => {
    const plan = planDaemon(facts(), {
      ...inputs(),
      registryFragments: [
        {source: 'insecure-registry', value: {'insecure-registries': ['gpu-01:5000']}}
      ]
    })
    expect(plan.diff).toEqual(['+ insecure-registries: ["gpu-01:5000"]'])
    expect(plan.actions.map(a => a.kind)).toEqual(['write-config', 'reload'])
  })

  it('refuses a malformed file, naming its line', () => {
    expect(() =>
      planDaemon(
        facts({parseError: new DaemonConfigParseError('unexpected "}" at column 3', 4)}),
        inputs()
      )
    ).toThrow(
      '/etc/docker/daemon.json is not valid JSON: unexpected "}" at column 3 (line 4). It was left as it is'
    )
  })

  it('enables CDI keeping the other feature flags', () => {
    const plan = planDaemon(
      facts({config: {...READY, features: {'containerd-snapshotter': true}}}),
      inputs({'nvidia-cdi': 'true'})
    )
    expect(plan.diff).toEqual(['+ features.cdi: true'])
  })
})

describe('toolkit repository and logs', () => {
  it('writes NVIDIA’s flat source and finds stale lists', () => {
    expect(
      nvidiaSourceLine(
        'https://nvidia.github.io/libnvidia-container/stable/deb',
        nvidiaKeyring(true)
      )
    ).toBe(
      'deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.asc] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n'
    )
    expect(
      staleNvidiaSources(
        [
          {
            path: '/etc/apt/sources.list.d/nvidia-docker.list',
            content: 'deb https://nvidia.github.io/nvidia-docker/ubuntu22.04/$(ARCH) /'
          },
          {path: '/etc/apt/sources.list.d/libnvidia-container.list', content: ''},
          {
            path: '/etc/apt/sources.list.d/cuda.list',
            content:
              'deb https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64 /'
          },
          {
            path: '/etc/apt/sources.list.d/mirror.list',
            content: 'deb http://mirror.local/nvidia/stable/deb/$(ARCH) /'
          }
        ],
        'http://mirror.local/nvidia/stable/deb'
      )
    ).toEqual([
      {path: '/etc/apt/sources.list.d/nvidia-docker.list', how: 'rename'},
      {path: '/etc/apt/sources.list.d/libnvidia-container.list', how: 'rename'},
      {path: '/etc/apt/sources.list.d/mirror.list', how: 'rename'}
    ])
  })

  it('picks the lines of a daemon log that say why it did not start', () => {
    const log =
      'level=info msg="Starting up"\nlevel=info msg="x"\nunable to configure the Docker daemon with file /etc/docker/daemon.json: bad'
    expect(errorLines(log)).toBe(
      'unable to configure the Docker daemon with file /etc/docker/daemon.json: bad'
    )
    expect(errorLines('a\nb')).toBe('a\nb')
  })
})

describe('a snap docker', () => {
  it('is left alone when nothing would change', () => {
    expect(kinds(facts({snap: true}))).toEqual([])
  })

  it('refuses toolkit packages and daemon.json changes before any change, naming the snap file', () => {
    expect(() =>
      planDaemon(facts({snap: true, installed: new Map()}), inputs({'gpu-runtime': 'nvidia'}))
    ).toThrow(
      /^Docker is installed as a snap: its daemon reads \/var\/snap\/docker\/current\/config\/daemon.json, not \/etc\/docker\/daemon.json, .*This run would add NVIDIA.s container toolkit repository/
    )
    expect(() =>
      planDaemon(facts({snap: true}), inputs({'daemon-config': '{"debug": true}'}))
    ).toThrow(
      /This run would update \/etc\/docker\/daemon.json: \+ debug: true; reload Docker \(SIGHUP\)/
    )
  })
})

describe('reload or restart, and the containers that keep running', () => {
  const running = (o: Partial<LoadedConfig> = {}) => loaded(['nvidia', 'runc'], 'nvidia', o)
  const logOpts = {'daemon-config': '{"log-opts": {"max-size": "10m"}}'}

  it('a change dockerd reloads is a reload, whatever runs', () => {
    const plan = planDaemon(
      facts({loaded: running(), workloads: ['train-42']}),
      inputs({'daemon-config': '{"registry-mirrors": ["http://10.0.0.9:5000"]}'})
    )
    expect(plan.actions.map(a => a.kind)).toEqual(['write-config', 'reload'])
    expect(plan.actions[1]).toMatchObject({reload: ['registry-mirrors'], restart: []})
  })

  it('a change only a start reads is a restart, protected by live-restore when containers run', () => {
    const plan = planDaemon(facts({loaded: running(), workloads: ['train-42']}), inputs(logOpts))
    const restart = plan.actions[1]
    expect(restart).toMatchObject({kind: 'restart', restart: ['log-opts'], workloads: ['train-42']})
    expect(restart.kind === 'restart' && JSON.parse(restart.protect?.text ?? '{}')).toMatchObject({
      'live-restore': true,
      'log-opts': {'max-size': '10m'}
    })
    expect(plan.steps[1].description).toBe(
      'restart Docker (log-opts only apply when dockerd starts); live-restore is on for the restart so 1 running container(s) keep running, then put back'
    )
  })

  it('needs no protection when nothing else runs, or live-restore is already on', () => {
    for (const f of [
      facts({loaded: running(), workloads: []}),
      facts({loaded: running({liveRestore: true}), workloads: ['train-42']})
    ]) {
      const restart = planDaemon(f, inputs(logOpts)).actions[1]
      expect(restart.kind === 'restart' && restart.protect).toBeUndefined()
    }
  })

  it('refuses a restart in swarm mode before any change, naming the containers and keys', () => {
    expect(() =>
      planDaemon(
        facts({loaded: running({swarm: true}), workloads: ['web', 'train-42']}),
        inputs(logOpts)
      )
    ).toThrow(
      'Applying /etc/docker/daemon.json needs a restart of Docker (log-opts only apply at start), and live-restore cannot keep running containers alive here (swarm mode). /etc/docker/daemon.json was not changed. Running: web, train-42. Make the change when they are done, or set allow-restart: true to restart anyway (they stop; those with a restart policy come back).'
    )
    const allowed = planDaemon(
      facts({loaded: running({swarm: true}), workloads: ['web']}),
      inputs({...logOpts, 'allow-restart': 'true'})
    )
    expect(allowed.actions[1]).toMatchObject({kind: 'restart', unprotectable: true})
  })

  it('starts a daemon that is not running with the new file', () => {
    const plan = planDaemon(facts({loaded: undefined}), inputs(logOpts))
    expect(plan.actions[1]).toMatchObject({kind: 'restart', reload: [], restart: []})
  })
})
