import {describe, expect, it} from '@jest/globals'
import {proxyDropIn, proxyEnvFile} from '../../src/docker/proxy.js'
import {serialiseDaemonConfig} from '../../src/phases/daemon/daemon-config.js'
import {planDaemon, type DaemonFacts} from '../../src/phases/daemon/plan.js'
import {
  PROXY_DROP_IN,
  PROXY_ENV_FILE,
  engineMajor,
  planDaemonProxies,
  type DaemonProxyFacts
} from '../../src/phases/daemon/proxy-plan.js'
import {settingsWith} from './inputs-helper.js'

const PROXY = 'http://proxy.corp:3128'
const settings = settingsWith({'http-proxy': PROXY, 'https-proxy': PROXY, 'no-proxy': '.corp'})
const proxies = settings.daemon.proxies!
const NO_PROXY = '.corp,localhost,127.0.0.0/8,::1,gpu-01,10.1.2.3'
const loaded = {http: PROXY, https: PROXY, noProxy: NO_PROXY}
const none = {http: '', https: '', noProxy: ''}

/** A host without GPUs whose daemon runs with `config` (and reports `running`). */
function facts(proxy: DaemonProxyFacts, config = {}): DaemonFacts {
  return {
    text: serialiseDaemonConfig(config),
    config,
    installed: new Map(),
    held: new Set(),
    loaded: {
      runtimes: ['runc'],
      defaultRuntime: 'runc',
      mirrors: [],
      insecure: [],
      liveRestore: false,
      debug: false,
      labels: [],
      swarm: false
    },
    workloads: [],
    debs: [],
    provided: new Set(),
    proxy
  }
}
const plan = (proxy: DaemonProxyFacts, config = {}) =>
  planDaemon(facts(proxy, config), {...settings.daemon, gpuRuntime: 'none'})
const steps = (proxy: DaemonProxyFacts, config = {}) =>
  plan(proxy, config).steps.map(s => s.description)

describe('the proxies of the daemon', () => {
  it('joins the local registry, loopback and this host to no-proxy', () => {
    expect(proxies.noProxy.join(',')).toBe(NO_PROXY)
  })

  it('reads the engine’s major version', () => {
    expect(engineMajor('20.10.24+dfsg1')).toBe(20)
    expect(engineMajor('28.5.2+dfsg1')).toBe(28)
    expect(engineMajor(undefined)).toBeUndefined()
  })

  it('go into daemon.json on Docker 23 and later, with one restart', () => {
    const p = plan({engineVersion: '26.1.5+dfsg1', systemd: true, running: none})
    expect(p.proxyWay).toBe('daemon.json')
    expect(p.actions.map(a => a.kind)).toEqual(['write-config', 'restart'])
    expect(p.diff).toEqual([
      `+ proxies: ${JSON.stringify({'http-proxy': PROXY, 'https-proxy': PROXY, 'no-proxy': NO_PROXY})}`
    ])
    expect(p.found).toContain('; proxies through daemon.json')
  })

  it('change nothing on a rerun with the same values (Docker 23+, and before it)', () => {
    const written = plan({engineVersion: '26.1.5', systemd: true, running: none}).actions[0]
    const config = JSON.parse((written as {text: string}).text) as object
    expect(steps({engineVersion: '26.1.5', systemd: true, running: loaded}, config)).toEqual([])
    expect(
      steps({
        engineVersion: '20.10.24',
        systemd: true,
        dropIn: proxyDropIn(PROXY_ENV_FILE),
        envFile: proxyEnvFile(proxies),
        running: loaded
      })
    ).toEqual([])
    expect(steps({engineVersion: '20.10.24', systemd: false, running: loaded})).toEqual([])
  })

  it('go into a systemd drop-in before Docker 23: write, daemon-reload, one restart', () => {
    const p = plan({engineVersion: '20.10.24+dfsg1', systemd: true, running: none})
    expect(p.proxyWay).toBe('systemd drop-in')
    expect(p.actions).toEqual([
      {kind: 'write-dropin', text: proxyDropIn(PROXY_ENV_FILE), env: proxyEnvFile(proxies)},
      {kind: 'daemon-reload'},
      expect.objectContaining({
        kind: 'restart',
        reason: `the proxies changed (${PROXY_DROP_IN})`,
        restart: ['proxies']
      })
    ])
    expect(p.diff).toEqual([])
  })

  it('restart once when daemon.json changes too, the drop-in written before it', () => {
    const p = planDaemon(facts({engineVersion: '20.10.24', systemd: true, running: none}), {
      ...settingsWith({'http-proxy': PROXY, 'daemon-config': '{"log-driver": "local"}'}).daemon,
      gpuRuntime: 'none'
    })
    expect(p.actions.map(a => a.kind)).toEqual([
      'write-config',
      'write-dropin',
      'daemon-reload',
      'restart'
    ])
  })

  it('never show a proxy password in the diff or the warnings, neither the one written before nor the new one', () => {
    const before = {proxies: {'http-proxy': 'http://u:old-pw@proxy.corp:3128'}}
    const p = planDaemon(facts({engineVersion: '26.1.5', systemd: true, running: none}, before), {
      ...settingsWith({'http-proxy': 'http://u:new-pw@proxy.corp:3128'}).daemon,
      gpuRuntime: 'none'
    })
    expect(p.diff.length).toBeGreaterThan(0)
    const shown = [...p.diff, ...p.warnings, ...p.steps.map(s => s.description)].join('\n')
    expect(shown).toContain('http://proxy.corp:3128')
    expect(shown).not.toMatch(/old-pw|new-pw/)
    // The file itself gets the new password.
    expect(JSON.stringify(p.actions[0])).toContain('new-pw')
  })

  it('rewrite the drop-in of an older release, whose Environment= lines carried the values', () => {
    const old = '[Service]\nEnvironment="HTTP_PROXY=http://u:pw@proxy.corp:3128"\n'
    const p = plan({engineVersion: '20.10.24', systemd: true, dropIn: old, running: loaded})
    expect(p.actions.map(a => a.kind)).toEqual(['write-dropin', 'daemon-reload', 'restart'])
  })

  it('restart a daemon that has not loaded them (a drop-in written, Docker not restarted since)', () => {
    expect(
      steps({
        engineVersion: '20.10.24',
        systemd: true,
        dropIn: proxyDropIn(PROXY_ENV_FILE),
        envFile: proxyEnvFile(proxies),
        running: none
      })
    ).toEqual(['restart Docker (the running daemon has not loaded the proxies)'])
  })

  it('move from the drop-in to daemon.json after an upgrade to Docker 23+', () => {
    const p = plan({
      engineVersion: '27.3.1',
      systemd: true,
      dropIn: proxyDropIn(PROXY_ENV_FILE),
      envFile: proxyEnvFile(proxies),
      running: loaded
    })
    expect(p.actions.map(a => a.kind)).toEqual([
      'write-config',
      'remove-dropin',
      'daemon-reload',
      'restart'
    ])
  })

  it('reach a dockerd without systemd before Docker 23 only through its environment: said, and restarted', () => {
    const p = plan({engineVersion: '20.10.24', systemd: false, running: none})
    expect(p.proxyWay).toBe('dockerd environment')
    expect(p.actions).toEqual([
      expect.objectContaining({
        kind: 'restart',
        reason: 'dockerd runs without the proxies in its environment',
        restart: ['proxies']
      })
    ])
    expect(p.warnings[0]).toMatch(
      /^Docker 20\.10\.24 has no proxies in daemon\.json \(Docker 23 and later\) and this host has no systemd for a drop-in: the proxies reach dockerd only through the environment of the dockerd this action starts, so Docker restarts now\./
    )
  })

  it('compare what Docker reports without the credentials it masks', () => {
    const withCreds = settingsWith({'http-proxy': 'http://u:pw@proxy.corp:3128'}).daemon.proxies
    const p = planDaemonProxies(
      {
        engineVersion: '20.10.24',
        systemd: false,
        running: {
          http: 'http://u:xxxxx@proxy.corp:3128',
          https: '',
          noProxy: withCreds!.noProxy.join(',')
        }
      },
      withCreds
    )
    expect(p.restart).toBeUndefined()
  })

  it('plan nothing without a proxy input, or before dockerd is installed (a dry run)', () => {
    expect(planDaemonProxies({engineVersion: '26.1.5', systemd: true}, undefined)).toEqual({
      fragments: [],
      actions: [],
      warnings: []
    })
    expect(planDaemonProxies({systemd: true}, proxies).actions).toEqual([])
  })
})
