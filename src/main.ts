import {statSync} from 'node:fs'
import * as core from '@actions/core'
import {enginePhase} from './docker/engine.js'
import {HostError} from './errors.js'
import {ExecRunner, type CommandRunner} from './exec/runner.js'
import {readHost} from './host.js'
import {parseInputs, readRawInputs, type InputHost} from './inputs.js'
import {daemonPhase} from './docker/daemon.js'
import {pushPhase} from './push/push.js'
import {registryPhase} from './registry/registry.js'
import {acquireHostLock, type HostLock} from './system/lock.js'
import {runPipeline, type OutputName, type PhaseReport, type RunContext} from './pipeline.js'
import type {PushResult} from './push/push-model.js'
import {renderSummary, writeSummary} from './summary.js'

const OUTPUT_NAMES: OutputName[] = [
  'docker-version',
  'docker-changed',
  'daemon-config-changed',
  'nvidia-runtime',
  'gpu-count',
  'driver-version',
  'cuda-version',
  'registry',
  'registry-started',
  'images',
  'digests'
]

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
 * The main step: inputs → phases → outputs and summary. The single place an error becomes a
 * failed step. `runner` is injectable so tests can record argv.
 */
export async function run(runner: CommandRunner = new ExecRunner()): Promise<void> {
  const started = Date.now()
  const reports: PhaseReport[] = []
  const warnings: string[] = []
  const outputs: RunContext['outputs'] = {}
  let error: string | undefined
  let dryRun = false
  let summary = true
  let lock: HostLock | undefined
  try {
    const inputs = parseInputs(readRawInputs(), fsHost)
    dryRun = inputs.dryRun
    summary = inputs.summary
    outputs.registry = inputs.registry.text
    const host = await readHost()
    if (!dryRun) await checkSudo(runner)
    const ctx: RunContext = {
      inputs,
      host,
      runner,
      outputs,
      warn(message) {
        warnings.push(message)
        core.warning(message)
      },
      saveState: (name, value) => core.saveState(name, value)
    }
    // One run at a time changes a host: several runner services may share it.
    if (!dryRun) lock = await acquireHostLock(runner, host.tempDir, m => core.info(m))
    await runPipeline([enginePhase, daemonPhase, registryPhase, pushPhase], ctx, reports)
  } catch (e) {
    error = e instanceof Error ? e.message : String(e)
    core.setFailed(error)
  } finally {
    await lock?.release()
  }
  for (const name of OUTPUT_NAMES) core.setOutput(name, outputs[name] ?? '')
  if (summary) {
    const markdown = renderSummary({
      reports,
      outputs,
      images: outputs.images ? (JSON.parse(outputs.images) as PushResult[]) : [],
      warnings,
      error,
      dryRun,
      seconds: (Date.now() - started) / 1000
    })
    await writeSummary(markdown).catch((e: unknown) =>
      core.warning(
        `Could not write the step summary: ${e instanceof Error ? e.message : String(e)}`
      )
    )
  }
}
