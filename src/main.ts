/** The main step: inputs, host facts, the host lock and the phases in order, then the outputs and the summary; the one place an error fails the step. */
import {statSync} from 'node:fs'
import * as core from '@actions/core'
import {proxyEnvironment} from './docker/proxy.js'
import {PHASES, SETUP, type Entry, type PhaseKey} from './entries.js'
import {HostError, errorMessage} from './errors.js'
import {ExecRunner, type CommandRunner} from './exec/runner.js'
import {readHost, type HostIdentity, type HostInfo} from './host.js'
import type {InputHost} from './input-fields.js'
import {
  gpuSettings,
  parseInputs,
  phaseSettings,
  proxiesFor,
  readRawInputs,
  type Inputs
} from './inputs.js'
import {writeOutputs} from './output-writer.js'
import type {Outputs} from './outputs.js'
import {daemonPhase} from './phases/daemon/phase.js'
import {diskPhase} from './phases/disk/phase.js'
import {enginePhase} from './phases/engine/phase.js'
import {proxyPhase} from './phases/proxy/phase.js'
import {gpuPhase} from './phases/gpus/phase.js'
import {parseGpuInputs} from './phases/gpus/inputs.js'
import {gpuHealthPhase} from './phases/gpus/health-phase.js'
import {driverHoldPhase} from './phases/gpus/driver-hold-phase.js'
import type {HookConfig} from './phases/hooks/inputs.js'
import {hooksPhase} from './phases/hooks/phase.js'
import {isolationPhase} from './phases/isolation/phase.js'
import {
  runPipeline,
  stage,
  type PhaseReport,
  type Stage,
  type UnboundContext
} from './phases/pipeline.js'
import {pushPhase} from './phases/push/phase.js'
import {registryPhase} from './phases/registry/phase.js'
import {teardownPhase} from './phases/teardown/phase.js'
import {runnerState, saveCleanup, savePostState, saveTeardown, type StateStore} from './state.js'
import {renderSummary} from './summary/render.js'
import {writeSummary} from './summary/write.js'
import {acquireHostLock, type HostLock} from './system/lock.js'

/** What every phase's context shares; each phase adds its own inputs. */
export type SharedContext = Omit<UnboundContext<unknown>, 'inputs'>

/** What the main step runs on; tests replace parts (the runner, the host, the phases). */
export interface MainDeps {
  runner: CommandRunner
  /** Where INPUT_* and GITHUB_STEP_SUMMARY come from. */
  env: NodeJS.ProcessEnv
  inputHost: InputHost
  readHost(): Promise<HostInfo>
  lockHost(runner: CommandRunner, tempDir: string): Promise<HostLock>
  /** The phases to run (those of `phases`), each bound to its slice of the inputs. */
  stages(inputs: Inputs, shared: SharedContext, phases: readonly PhaseKey[]): Stage[]
  state: StateStore
  /** The action.yml this step runs: which inputs it reads, phases it runs and outputs it sets. */
  entry: Entry
}

/** What a run found and did, success or not: the outputs, the summary's rows and warnings. */
interface RunRecord {
  outputs: Outputs
  reports: PhaseReport[]
  warnings: string[]
  dryRun: boolean
  summary: boolean
  error?: string
}

const fsHost: InputHost = {
  pathKind(path) {
    try {
      const st = statSync(path)
      return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined
    } catch {
      return undefined
    }
  }
}

/**
 * The phases of `phases`, in pipeline order, each bound to its own settings. The GPU health gate
 * and GPU leases come first, before the host lock; the driver hold follows the daemon phase (which
 * installs the toolkit); the disk phase frees space once the registries run (their images in use)
 * and before the push.
 */
export function phaseStages(
  inputs: Inputs,
  shared: SharedContext,
  phases: readonly PhaseKey[] = PHASES
): Stage[] {
  const settings = phaseSettings(inputs, shared.host.identity)
  const all: Record<PhaseKey, Stage> = {
    health: stage(gpuHealthPhase, {...shared, inputs: settings.gpuHealth}),
    gpus: stage(gpuPhase, {...shared, inputs: settings.gpus}),
    proxy: stage(proxyPhase, {...shared, inputs: settings.proxy}),
    engine: stage(enginePhase, {...shared, inputs: settings.engine}),
    daemon: stage(daemonPhase, {...shared, inputs: settings.daemon}),
    hold: stage(driverHoldPhase, {...shared, inputs: settings.driverHold}),
    isolation: stage(isolationPhase, {...shared, inputs: settings.isolation}),
    hooks: stage(hooksPhase, {...shared, inputs: settings.hooks}),
    registry: stage(registryPhase, {...shared, inputs: settings.registry}),
    disk: stage(diskPhase, {...shared, inputs: settings.disk}),
    push: stage(pushPhase, {...shared, inputs: settings.push})
  }
  // The hooks only when asked for: most runs never touch the runner's hooks, and their summary
  // says nothing of them.
  const wanted = PHASES.filter(
    p => phases.includes(p) && (p !== 'hooks' || settings.hooks.runnerHooks !== 'none')
  )
  return wanted.map(p => all[p])
}

function defaultDeps(): MainDeps {
  return {
    runner: new ExecRunner(),
    env: process.env,
    inputHost: fsHost,
    readHost: () => readHost(),
    lockHost: (runner, tempDir) => acquireHostLock(runner, tempDir, m => core.info(m)),
    stages: phaseStages,
    state: runnerState,
    entry: SETUP
  }
}

const DEPRECATED_CLEANUP_ALL =
  'cleanup: all does what cleanup: registry does, and is deprecated: write cleanup: registry.'

/** Fails early, before any change, when a non-root run cannot use sudo. */
async function checkSudo(runner: CommandRunner): Promise<void> {
  if (runner.isRoot) return
  const r = await runner.run(['sudo', '-n', 'true'], {allowFailure: true})
  if (r.exitCode !== 0) {
    throw new HostError(
      'This action changes the host: run it as root, or as a user with passwordless sudo (sudo -n true failed).'
    )
  }
}

/**
 * The proxy inputs become this process's environment, so every command it runs (sudo keeps them)
 * and its own downloads go through them; the runner's own proxy variables stay when none is set.
 */
function useProxies(env: NodeJS.ProcessEnv, inputs: Inputs, identity: HostIdentity): void {
  const proxies = proxiesFor(inputs, identity)
  if (proxies) Object.assign(env, proxyEnvironment(proxies))
}

/** Inputs, host, lock, phases: everything that may fail, recorded as it goes. */
async function runSteps(deps: MainDeps, record: RunRecord): Promise<void> {
  const inputs = parseInputs(readRawInputs(deps.env, deps.entry), deps.inputHost)
  record.dryRun = inputs.run.dryRun
  record.summary = inputs.run.summary
  record.outputs.registry = inputs.registry.registry.text
  saveCleanup(inputs.run.cleanup, deps.state)
  if (inputs.run.cleanup === 'all') {
    record.warnings.push(DEPRECATED_CLEANUP_ALL)
    core.warning(DEPRECATED_CLEANUP_ALL)
  }
  saveTeardown(teardownPhase.isOn(inputs.teardown, inputs.gpus.gpus.kind !== 'none'), deps.state)
  const host = await deps.readHost()
  useProxies(deps.env, inputs, host.identity)
  if (!record.dryRun) await checkSudo(deps.runner)
  const shared: SharedContext = {
    host,
    runner: deps.runner,
    outputs: record.outputs,
    warn(message) {
      record.warnings.push(message)
      core.warning(message)
    },
    remember: update => savePostState(update, deps.state)
  }
  const stages = deps.stages(inputs, shared, deps.entry.phases)
  // GPU leases first, without the host lock: a job waiting for GPUs holds up no other run.
  await runPipeline(
    stages.filter(s => s.beforeHostLock === true),
    record.dryRun,
    record.reports
  )
  const locked = stages.filter(s => s.beforeHostLock !== true)
  if (locked.length === 0) return
  // One run at a time changes a host: several runner services may share it.
  const lock = record.dryRun ? undefined : await deps.lockHost(deps.runner, host.tempDir)
  try {
    await runPipeline(locked, record.dryRun, record.reports)
  } finally {
    await lock?.release()
  }
}

/** The step summary; a summary that cannot be written is a warning, never a failure. */
async function summarise(
  record: RunRecord,
  seconds: number,
  env: NodeJS.ProcessEnv,
  title: string
): Promise<void> {
  const markdown = renderSummary({...record, seconds, title})
  await writeSummary(markdown, env).catch((e: unknown) =>
    core.warning(`Could not write the step summary: ${errorMessage(e)}`)
  )
}

/**
 * The main step: inputs → phases → outputs and summary. The single place an error becomes a
 * failed step; every output is set and the summary written whether the run failed or not.
 */
export async function run(overrides: Partial<MainDeps> = {}): Promise<void> {
  const deps = {...defaultDeps(), ...overrides}
  const started = Date.now()
  const record: RunRecord = {outputs: {}, reports: [], warnings: [], dryRun: false, summary: true}
  try {
    await runSteps(deps, record)
  } catch (e) {
    record.error = errorMessage(e)
    core.setFailed(record.error)
  }
  writeOutputs(record.outputs, deps.entry.outputs)
  if (record.summary) {
    await summarise(record, (Date.now() - started) / 1000, deps.env, deps.entry.title)
  }
}

/**
 * The runner's job-started hook (runner-hooks: install), run by the runner before the job's
 * containers are made: leases the GPUs the hooks were installed with to the job (its worker, the
 * Runner.Worker above the hook's shell) and exports them to the job's steps. A failure fails the
 * hook, and with it the job: the runner then makes no container and runs no step.
 */
export async function jobStartedHook(
  config: HookConfig,
  runner: CommandRunner = new ExecRunner()
): Promise<void> {
  try {
    const gpus = parseGpuInputs({gpus: config.gpus, 'gpu-wait': String(config.gpuWait)})
    if (gpus.gpus.kind === 'none') {
      core.info('The job hooks were installed without gpus: no lease.')
      return
    }
    const host = await readHost()
    const outputs: Outputs = {}
    const ctx = {host, runner, outputs, warn: (m: string) => core.warning(m), remember: () => {}}
    // The health gate first, as in the main step: an unhealthy GPU is never leased to the job.
    const health = {
      mode: config.gpuHealth,
      countExpected: config.gpuCountExpected,
      holdDriver: false,
      teardown: config.teardown
    }
    await runPipeline(
      [
        stage(gpuHealthPhase, {...ctx, inputs: health}),
        stage(gpuPhase, {...ctx, inputs: gpuSettings(gpus, config.teardown)})
      ],
      false,
      []
    )
  } catch (e) {
    core.setFailed(errorMessage(e))
  }
}
