import {statSync} from 'node:fs'
import * as core from '@actions/core'
import {proxyEnvironment} from './docker/proxy.js'
import {HostError, errorMessage} from './errors.js'
import {ExecRunner, type CommandRunner} from './exec/runner.js'
import {readHost, type HostIdentity, type HostInfo} from './host.js'
import type {InputHost} from './input-fields.js'
import {parseInputs, phaseSettings, proxiesFor, readRawInputs, type Inputs} from './inputs.js'
import {writeOutputs, type Outputs} from './outputs.js'
import {daemonPhase} from './phases/daemon/phase.js'
import {diskPhase} from './phases/disk/phase.js'
import {enginePhase} from './phases/engine/phase.js'
import {proxyPhase} from './phases/proxy/phase.js'
import {gpuPhase} from './phases/gpus/phase.js'
import {gpuHealthPhase} from './phases/gpus/health-phase.js'
import {driverHoldPhase} from './phases/gpus/driver-hold-phase.js'
import {
  runPipeline,
  stage,
  type PhaseReport,
  type Stage,
  type UnboundContext
} from './phases/pipeline.js'
import {pushPhase} from './phases/push/phase.js'
import {registryPhase} from './phases/registry/phase.js'
import {runnerState, saveCleanup, savePostState, type StateStore} from './state.js'
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
  /** The phases to run, each bound to its slice of the inputs. */
  stages(inputs: Inputs, shared: SharedContext): Stage[]
  state: StateStore
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
 * The phases in pipeline order, each bound to its own settings. The GPU health gate and GPU leases
 * come first, before the host lock; the driver hold follows the daemon phase (which installs the
 * toolkit); the disk phase frees space once the registries run (their images in use) and before
 * the push.
 */
export function phaseStages(inputs: Inputs, shared: SharedContext): Stage[] {
  const settings = phaseSettings(inputs, shared.host.identity)
  return [
    stage(gpuHealthPhase, {...shared, inputs: settings.gpuHealth}),
    stage(gpuPhase, {...shared, inputs: settings.gpus}),
    stage(proxyPhase, {...shared, inputs: settings.proxy}),
    stage(enginePhase, {...shared, inputs: settings.engine}),
    stage(daemonPhase, {...shared, inputs: settings.daemon}),
    stage(driverHoldPhase, {...shared, inputs: settings.driverHold}),
    stage(registryPhase, {...shared, inputs: settings.registry}),
    stage(diskPhase, {...shared, inputs: settings.disk}),
    stage(pushPhase, {...shared, inputs: settings.push})
  ]
}

function defaultDeps(): MainDeps {
  return {
    runner: new ExecRunner(),
    env: process.env,
    inputHost: fsHost,
    readHost: () => readHost(),
    lockHost: (runner, tempDir) => acquireHostLock(runner, tempDir, m => core.info(m)),
    stages: phaseStages,
    state: runnerState
  }
}

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
  const inputs = parseInputs(readRawInputs(deps.env), deps.inputHost)
  record.dryRun = inputs.run.dryRun
  record.summary = inputs.run.summary
  record.outputs.registry = inputs.registry.registry.text
  saveCleanup(inputs.run.cleanup, deps.state)
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
  const stages = deps.stages(inputs, shared)
  // GPU leases first, without the host lock: a job waiting for GPUs holds up no other run.
  await runPipeline(
    stages.filter(s => s.beforeHostLock === true),
    record.dryRun,
    record.reports
  )
  // One run at a time changes a host: several runner services may share it.
  const lock = record.dryRun ? undefined : await deps.lockHost(deps.runner, host.tempDir)
  try {
    await runPipeline(
      stages.filter(s => s.beforeHostLock !== true),
      record.dryRun,
      record.reports
    )
  } finally {
    await lock?.release()
  }
}

/** The step summary; a summary that cannot be written is a warning, never a failure. */
async function summarise(
  record: RunRecord,
  seconds: number,
  env: NodeJS.ProcessEnv
): Promise<void> {
  const markdown = renderSummary({...record, seconds})
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
  writeOutputs(record.outputs)
  if (record.summary) await summarise(record, (Date.now() - started) / 1000, deps.env)
}
