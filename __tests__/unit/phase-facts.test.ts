import {describe, expect, it} from '@jest/globals'
import {daemonFacts, looksForGpu, type DaemonState} from '../../src/phases/daemon/facts.js'
import {engineFacts, type EngineState} from '../../src/phases/engine/facts.js'
import type {Fact} from '../../src/phases/pipeline.js'
import {plannedPushFacts, pushFacts} from '../../src/phases/push/facts.js'
import {registryFacts, type RegistryState} from '../../src/phases/registry/facts.js'
import type {ImageResult} from '../../src/outputs.js'
import {settingsWith} from './inputs-helper.js'

const running: EngineState = {
  installed: true,
  version: '27.3.1',
  source: 'docker-ce',
  running: true,
  manager: 'systemd',
  enabled: true
}

describe('engineFacts', () => {
  it.each<[string, EngineState, Fact[]]>([
    [
      'a running engine',
      running,
      [
        {label: 'Docker', value: '27.3.1', note: 'docker-ce'},
        {label: 'service', value: 'systemd'}
      ]
    ],
    [
      'one not running, not enabled at boot',
      {
        ...running,
        version: '20.10.24+dfsg1-1',
        source: 'docker.io',
        running: false,
        enabled: false
      },
      [
        {label: 'Docker', value: '20.10.24+dfsg1-1', note: 'docker.io, not running'},
        {label: 'service', value: 'systemd', note: 'not enabled at boot'}
      ]
    ],
    [
      'a dockerd this action runs, without an init system',
      {...running, manager: 'direct', enabled: undefined},
      [
        {label: 'Docker', value: '27.3.1', note: 'docker-ce'},
        {label: 'service', value: 'dockerd', note: 'no init system: run by this action'}
      ]
    ],
    [
      'an engine whose version nothing says',
      {...running, version: undefined, source: 'not from apt', running: false, manager: 'sysv'},
      [
        {label: 'Docker', value: true, note: 'not from apt, not running'},
        {label: 'service', value: 'sysv'}
      ]
    ],
    ['no engine', {...running, installed: false}, [{label: 'Docker Engine', value: null}]]
  ])('%s', (_what, state, facts) => {
    expect(engineFacts(state)).toEqual(facts)
  })
})

describe('daemonFacts', () => {
  const gpu = {count: 8, driverVersion: '570.86.15', cudaVersion: '12.8'}
  it.each<[string, DaemonState, Fact[]]>([
    [
      "the runtimes that matter (not containerd's own), the default and the GPUs",
      {
        runtimes: ['io.containerd.runc.v2', 'io.containerd.runtime.v1.linux', 'nvidia', 'runc'],
        defaultRuntime: 'nvidia',
        gpuLooked: true,
        gpu
      },
      [
        {label: 'runtimes', value: ['nvidia', 'runc']},
        {label: 'default', value: 'nvidia'},
        {label: 'GPU(s)', value: 8},
        {label: 'driver', value: '570.86.15', note: 'CUDA 12.8'}
      ]
    ],
    [
      'no driver where one was looked for',
      {runtimes: ['runc'], defaultRuntime: 'runc', gpuLooked: true},
      [
        {label: 'runtimes', value: ['runc']},
        {label: 'default', value: 'runc'},
        {label: 'NVIDIA driver', value: null}
      ]
    ],
    [
      'nothing about GPUs where none was looked for',
      {runtimes: ['runc'], gpuLooked: false},
      [
        {label: 'runtimes', value: ['runc']},
        {label: 'default', value: 'runc'}
      ]
    ],
    [
      'a daemon that does not answer, a driver without a CUDA version',
      {gpuLooked: true, gpu: {count: 1, driverVersion: '331.62'}},
      [
        {label: 'running daemon', value: null},
        {label: 'GPU(s)', value: 1},
        {label: 'driver', value: '331.62'}
      ]
    ]
  ])('%s', (_what, state, facts) => {
    expect(daemonFacts(state)).toEqual(facts)
  })

  it.each([
    [{'gpu-runtime': 'none'}, false],
    [{'gpu-runtime': 'none', 'gpu-check': 'true'}, true],
    [{}, true]
  ])('looks for a GPU with %j: %s', (raw, looks) => {
    expect(looksForGpu(settingsWith(raw).daemon)).toBe(looks)
  })
})

describe('registryFacts', () => {
  const data = {label: 'data', value: '/var/lib/docker-gpu-setup/registry'}
  it.each<[string, Record<string, string>, RegistryState, Fact[]]>([
    [
      'a running local registry',
      {},
      'running',
      [{label: 'registry', value: 'localhost:5000'}, data]
    ],
    [
      'one not created yet',
      {},
      'absent',
      [{label: 'registry', value: 'localhost:5000', note: 'no container yet'}, data]
    ],
    [
      'one stopped, with its mirror',
      {'registry-mirror': 'true'},
      'stopped',
      [
        {label: 'registry', value: 'localhost:5000', note: 'container stopped'},
        data,
        {label: 'mirror', value: '127.0.0.1:5001'}
      ]
    ],
    [
      'before Docker runs (a dry run)',
      {},
      'docker down',
      [{label: 'registry', value: 'localhost:5000', note: 'Docker is not running yet'}, data]
    ],
    [
      'a registry elsewhere',
      {registry: 'registry.example.com:5000'},
      'not wanted',
      [{label: 'registry', value: 'registry.example.com:5000', note: 'not on this host'}]
    ],
    [
      'a registry this run does not start',
      {'start-registry': 'false'},
      'not wanted',
      [
        {
          label: 'registry',
          value: 'localhost:5000',
          note: 'not started here: start-registry is false'
        }
      ]
    ]
  ])('%s', (_what, raw, state, facts) => {
    expect(registryFacts(settingsWith(raw).registry, state)).toEqual(facts)
  })
})

describe('pushFacts', () => {
  const image = (status: ImageResult['status']): ImageResult => ({
    source: 'a:1',
    target: 'localhost:5000/a:1',
    digest: '',
    size: 0,
    status
  })

  it('counts the images by status, and says when there are none', () => {
    expect(pushFacts((['pushed', 'pushed', 'unchanged', 'failed'] as const).map(image))).toEqual([
      {label: 'pushed', value: 2},
      {label: 'unchanged', value: 1},
      {label: 'failed', value: 1}
    ])
    expect(pushFacts([])).toEqual([{label: 'images', value: null}])
  })

  it('says what a dry run would push', () => {
    expect(plannedPushFacts(3, 1)).toEqual([
      {label: 'to push', value: 3},
      {label: 'unchanged', value: 1}
    ])
  })
})
