import {describe, expect, it} from '@jest/globals'
import type {HostInfo} from '../../src/host.js'
import {daemonPhase} from '../../src/phases/daemon/phase.js'
import type {DaemonFacts} from '../../src/phases/daemon/plan.js'
import {diskPhase} from '../../src/phases/disk/phase.js'
import type {DiskFacts} from '../../src/phases/disk/plan.js'
import {enginePhase} from '../../src/phases/engine/phase.js'
import type {EngineFacts} from '../../src/phases/engine/plan.js'
import {gpuPhase} from '../../src/phases/gpus/phase.js'
import type {GpuFacts} from '../../src/phases/gpus/plan.js'
import type {Phase, PhasePlan, PlanContext} from '../../src/phases/pipeline.js'
import {proxyPhase} from '../../src/phases/proxy/phase.js'
import type {ProxyFacts} from '../../src/phases/proxy/plan.js'
import {pushPhase} from '../../src/phases/push/phase.js'
import type {PushFacts} from '../../src/phases/push/plan.js'
import type {RegistryPool} from '../../src/phases/push/registries.js'
import {DEFAULT_REGISTRY_CONFIG} from '../../src/registry-client/transport.js'
import {registryPhase} from '../../src/phases/registry/phase.js'
import type {RegistryFacts} from '../../src/phases/registry/plan.js'
import {parseOsRelease} from '../../src/system/os-release.js'
import {ME, settingsWith} from './inputs-helper.js'

const HOST: HostInfo = {
  os: parseOsRelease('ID=ubuntu\nVERSION_CODENAME=noble\n'),
  isRoot: false,
  user: 'runner',
  systemd: true,
  tempDir: '/tmp',
  identity: ME
}
const settings = settingsWith({
  images: 'app:1\ntool:2',
  'registry-mirror': 'true',
  'registry-caches': 'nvcr.io',
  'http-proxy': 'http://proxy.corp:3128',
  gpus: '2',
  'min-free-space': '20GB'
})
const D = `sha256:${'d'.repeat(64)}`

const engineFacts: EngineFacts = {
  installed: new Map([['docker.io', '20.10.24']]),
  held: new Set(['docker.io']),
  snap: false,
  client: true,
  manager: 'systemd',
  enabled: false,
  dockerGroup: ['someone'],
  candidates: new Map([['docker-ce', '5:27.3.1-1']]),
  debs: [],
  provided: new Set()
}
const daemonFacts: DaemonFacts = {
  text: '{"log-driver": "local"}\n',
  config: {'log-driver': 'local'},
  gpu: {driverVersion: '550.54.15', cudaVersion: '12.4', gpus: [{index: 0, name: 'NVIDIA H100'}]},
  installed: new Map([['nvidia-docker2', '2.13.0-1']]),
  held: new Set(['libnvidia-container1']),
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
  workloads: ['train-42'],
  debs: [],
  provided: new Set(),
  proxy: {engineVersion: '20.10.24', systemd: true, running: {http: '', https: '', noProxy: ''}}
}
const registryFacts: RegistryFacts = {
  me: ME,
  wanted: true,
  dockerUp: true,
  htpasswdOk: true,
  certOk: true,
  fileHashes: {},
  dataDirs: {'/var/lib/docker-gpu-setup/registry': false},
  portHolders: {}
}
const proxyFacts: ProxyFacts = {
  files: [{path: '/home/runner/.docker/config.json', text: '{"auths": {}}'}],
  runnerEnvironment: {}
}
const pushFacts: PushFacts = {
  dockerUp: true,
  containerdStore: false,
  registryConfig: DEFAULT_REGISTRY_CONFIG,
  targets: settings.push.images,
  locals: new Map([
    ['app:1', {id: 'a', repoDigests: [`localhost:5000/app@${D}`], size: 1, layers: []}],
    ['tool:2', {id: 't', repoDigests: [], size: 2, layers: []}]
  ]),
  remote: new Map([['localhost:5000/app:1', {digest: D, config: 'a', layers: [], bytes: 1}]]),
  // The planner never opens a registry client.
  registries: {} as RegistryPool
}

const gpu = (index: number, memoryUsed: number) => ({
  index,
  uuid: `GPU-${String(index).repeat(8)}-0000-4000-8000-000000000000`,
  name: 'NVIDIA H100',
  memoryUsed,
  memoryTotal: 81559,
  processes: memoryUsed > 0 ? 1 : 0
})
const gpuFacts: GpuFacts = {
  devices: [gpu(0, 900), gpu(1, 0), gpu(2, 10)],
  leases: new Map(),
  job: {pid: 10, start: '99', process: 'Runner.Worker', job: 'train'}
}
const NOW = Date.parse('2026-12-01T12:00:00Z')
const diskFacts: DiskFacts = {
  wanted: true,
  dockerUp: true,
  dataRoot: '/var/lib/docker',
  free: 5e9,
  now: NOW,
  inventory: {
    containers: [],
    images: ['a:1', 'b:1'].map((tag, i) => ({
      id: `sha256:${i}`,
      tags: [tag],
      digests: [],
      parent: '',
      created: NOW - (i + 2) * 86_400_000,
      lastTagged: 0,
      labels: {},
      size: 1e9
    })),
    buildCache: 0,
    volumes: 0
  }
}

/** Plans twice from copies of the same facts; the facts must come back untouched. */
function planTwice<I, F, P extends PhasePlan>(
  phase: Phase<I, F, P>,
  facts: F,
  ctx: PlanContext<I>
): [P, P] {
  const before = structuredClone(facts)
  const first = phase.plan(facts, ctx)
  expect(facts).toEqual(before)
  return [first, phase.plan(structuredClone(facts), ctx)]
}

describe('a phase’s plan is pure: the same facts give the same plan', () => {
  it.each([
    ['proxy', () => planTwice(proxyPhase, proxyFacts, {inputs: settings.proxy, host: HOST})],
    ['engine', () => planTwice(enginePhase, engineFacts, {inputs: settings.engine, host: HOST})],
    ['daemon', () => planTwice(daemonPhase, daemonFacts, {inputs: settings.daemon, host: HOST})],
    [
      'registry',
      () => planTwice(registryPhase, registryFacts, {inputs: settings.registry, host: HOST})
    ],
    ['push', () => planTwice(pushPhase, pushFacts, {inputs: settings.push, host: HOST})],
    ['gpus', () => planTwice(gpuPhase, gpuFacts, {inputs: settings.gpus, host: HOST})],
    ['disk', () => planTwice(diskPhase, diskFacts, {inputs: settings.disk, host: HOST})]
  ])('%s', (_name, plan) => {
    const [first, second] = plan()
    expect(first.steps.length).toBeGreaterThan(0)
    expect(second).toEqual(first)
  })
})
