import {describe, expect, it} from '@jest/globals'
import type {HostInfo} from '../../src/host.js'
import {daemonPhase} from '../../src/phases/daemon/phase.js'
import type {DaemonFacts} from '../../src/phases/daemon/plan.js'
import {enginePhase} from '../../src/phases/engine/phase.js'
import type {EngineFacts} from '../../src/phases/engine/plan.js'
import type {Phase, PhasePlan, PlanContext} from '../../src/phases/pipeline.js'
import {pushPhase} from '../../src/phases/push/phase.js'
import type {PushFacts} from '../../src/phases/push/plan.js'
import {DEFAULT_REGISTRY_CONFIG} from '../../src/phases/push/transport.js'
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
const settings = settingsWith({images: 'app:1\ntool:2', 'registry-mirror': 'true'})
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
  runtimes: ['runc'],
  defaultRuntime: 'runc',
  debs: [],
  provided: new Set()
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
const pushFacts: PushFacts = {
  dockerUp: true,
  containerdStore: false,
  registryConfig: DEFAULT_REGISTRY_CONFIG,
  targets: settings.push.images,
  locals: new Map([
    ['app:1', {id: 'a', repoDigests: [`localhost:5000/app@${D}`], size: 1, layers: []}],
    ['tool:2', {id: 't', repoDigests: [], size: 2, layers: []}]
  ]),
  remote: new Map([['localhost:5000/app:1', {digest: D, config: 'a', layers: [], bytes: 1}]])
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
    ['engine', () => planTwice(enginePhase, engineFacts, {inputs: settings.engine, host: HOST})],
    ['daemon', () => planTwice(daemonPhase, daemonFacts, {inputs: settings.daemon, host: HOST})],
    [
      'registry',
      () => planTwice(registryPhase, registryFacts, {inputs: settings.registry, host: HOST})
    ],
    ['push', () => planTwice(pushPhase, pushFacts, {inputs: settings.push, host: HOST})]
  ])('%s', (_name, plan) => {
    const [first, second] = plan()
    expect(first.steps.length).toBeGreaterThan(0)
    expect(second).toEqual(first)
  })
})
