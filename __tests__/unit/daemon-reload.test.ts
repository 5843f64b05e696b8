import {describe, expect, it} from '@jest/globals'
import {
  changedKeys,
  classifyChange,
  notTaken,
  parseLoadedConfig
} from '../../src/phases/daemon/reload.js'

const NVIDIA = {nvidia: {path: 'nvidia-container-runtime', args: []}}

describe('what a reload applies', () => {
  it.each([
    [
      'the NVIDIA runtime as default',
      {},
      {runtimes: NVIDIA, 'default-runtime': 'nvidia'},
      ['default-runtime', 'runtimes'],
      []
    ],
    [
      'a registry mirror',
      {},
      {'registry-mirrors': ['http://127.0.0.1:5001']},
      ['registry-mirrors'],
      []
    ],
    [
      'an insecure registry',
      {debug: true},
      {debug: true, 'insecure-registries': ['gpu-01:5000']},
      ['insecure-registries'],
      []
    ],
    ['live-restore', {}, {'live-restore': true}, ['live-restore'], []],
    ['log options', {}, {'log-opts': {'max-size': '10m'}}, [], ['log-opts']],
    ['the data root', {}, {'data-root': '/srv/docker'}, [], ['data-root']],
    ['proxies (read at start)', {}, {proxies: {'http-proxy': 'http://p:3128'}}, [], ['proxies']],
    ['features (switched at start)', {}, {features: {cdi: true}}, [], ['features']],
    ['a removed reloadable key (a reload keeps the old value)', {debug: true}, {}, [], ['debug']],
    ['a mix', {}, {runtimes: NVIDIA, 'log-driver': 'local'}, ['runtimes'], ['log-driver']]
  ])('%s', (_what, before, after, reload, restart) => {
    expect(classifyChange(before, after)).toEqual({reload, restart})
  })

  it('compares values, not key order', () => {
    expect(changedKeys({a: {x: 1, y: 2}}, {a: {y: 2, x: 1}})).toEqual([])
    expect(changedKeys({a: [1, 2]}, {a: [2, 1]})).toEqual(['a'])
  })
})

const INFO = JSON.stringify({
  Runtimes: {runc: {path: 'runc'}, nvidia: {path: 'nvidia-container-runtime'}},
  DefaultRuntime: 'nvidia',
  RegistryConfig: {
    Mirrors: ['http://127.0.0.1:5001/'],
    InsecureRegistryCIDRs: ['127.0.0.0/8'],
    IndexConfigs: {
      'docker.io': {Secure: true},
      'gpu-01:5000': {Secure: false}
    }
  },
  LiveRestoreEnabled: true,
  Debug: false,
  Labels: ['gpu=h100'],
  Swarm: {LocalNodeState: 'inactive'},
  CgroupDriver: 'systemd',
  ServerVersion: '26.1.5+dfsg1',
  CDISpecDirs: ['/etc/cdi', '/var/run/cdi']
})

describe('what docker info shows taken', () => {
  it('reads the keys it can show', () => {
    expect(parseLoadedConfig(INFO)).toEqual({
      runtimes: ['runc', 'nvidia'],
      defaultRuntime: 'nvidia',
      mirrors: ['http://127.0.0.1:5001/'],
      insecure: ['gpu-01:5000', '127.0.0.0/8'],
      liveRestore: true,
      debug: false,
      labels: ['gpu=h100'],
      swarm: false,
      cgroupDriver: 'systemd',
      serverVersion: '26.1.5+dfsg1',
      cdiSpecDirs: ['/etc/cdi', '/var/run/cdi']
    })
    expect(parseLoadedConfig('{"Swarm": {"LocalNodeState": "active"}}')?.swarm).toBe(true)
    expect(parseLoadedConfig('not json')).toBeUndefined()
  })

  it('finds nothing missing when the daemon shows every reloaded value (mirrors without their slash)', () => {
    const loaded = parseLoadedConfig(INFO)!
    const config = {
      runtimes: NVIDIA,
      'default-runtime': 'nvidia',
      'registry-mirrors': ['http://127.0.0.1:5001'],
      'insecure-registries': ['gpu-01:5000'],
      'live-restore': true,
      labels: ['gpu=h100']
    }
    expect(notTaken(config, loaded, Object.keys(config))).toEqual([])
  })

  it('names each key whose value the daemon does not show, among those asked about', () => {
    const loaded = parseLoadedConfig(INFO)!
    const config = {
      runtimes: {...NVIDIA, custom: {path: 'runc'}},
      'default-runtime': 'custom',
      'registry-mirrors': ['http://127.0.0.1:5002'],
      'live-restore': false,
      debug: true,
      'max-concurrent-downloads': 7
    }
    expect(notTaken(config, loaded, Object.keys(config))).toEqual([
      'runtimes',
      'default-runtime',
      'registry-mirrors',
      'live-restore',
      'debug'
    ])
    expect(notTaken(config, loaded, ['max-concurrent-downloads'])).toEqual([])
  })
})
