/**
 * Reads what the GPU health gate judges (effects only): `nvidia-smi -q -x`, its compute processes,
 * the kernel log (`dmesg`: `journalctl -k` is empty in containers and without a persistent
 * journal), the loaded module's version and the GPU leases. Changes nothing.
 */
import {existsSync} from 'node:fs'
import {errorMessage, tailLines} from '../../errors.js'
import type {CommandRunner} from '../../exec/runner.js'
import {readFileMaybe} from '../../system/files.js'
import {findNvidiaSmi} from '../../system/nvidia-smi.js'
import type {PhaseContext} from '../pipeline.js'
import {readLeases} from './detect.js'
import {QUERY_APPS} from './gpu-query.js'
import {findLeftovers, type HealthFacts} from './health.js'
import {MODULE_VERSION_FILE, parseModuleVersion} from './health-driver.js'
import type {GpuHealthInputs} from './health-inputs.js'
import {parseKernelLog, type KernelLog} from './health-kernel.js'
import {QUERY_XML, parseSmiXml} from './health-smi.js'

/** What detection found: the facts to judge, or why the gate does not run. */
export type GpuHealthFacts = {skipped: string} | {facts: HealthFacts}

/** The kernel log since boot, as `dmesg` prints it (root: dmesg_restrict may forbid others). */
async function kernelLog(
  runner: CommandRunner
): Promise<{kernel?: KernelLog; kernelUnreadable?: string}> {
  const r = await runner
    .run(['dmesg'], {root: true, allowFailure: true, timeoutSeconds: 30})
    .catch((e: unknown) => ({exitCode: -1, stdout: '', stderr: errorMessage(e)}))
  if (r.exitCode !== 0) {
    return {kernelUnreadable: `dmesg failed (exit ${r.exitCode}): ${tailLines(r.stderr, 1)}`}
  }
  return {kernel: parseKernelLog(r.stdout)}
}

/** Whether a process with this pid exists on this host. */
function pidExists(pid: number): boolean {
  return existsSync(`/proc/${pid}`)
}

/**
 * Reads the GPUs' health signals; skips (says why) when gpu-health is off or the host has no
 * NVIDIA driver and no GPU count is expected.
 */
export async function detectGpuHealth(ctx: PhaseContext<GpuHealthInputs>): Promise<GpuHealthFacts> {
  const {inputs, runner} = ctx
  if (inputs.mode === 'off') return {skipped: 'gpu-health is off'}
  const smi = await findNvidiaSmi()
  const moduleText = await readFileMaybe(runner, MODULE_VERSION_FILE)
  if (smi === undefined && moduleText === undefined && inputs.countExpected === undefined) {
    return {skipped: 'no NVIDIA driver on this host'}
  }
  const ask = async (args: string[]) =>
    smi === undefined
      ? {exitCode: 127, stdout: '', stderr: 'nvidia-smi is not installed'}
      : runner
          .run([smi, ...args], {allowFailure: true, timeoutSeconds: 60})
          .catch((e: unknown) => ({exitCode: -1, stdout: '', stderr: errorMessage(e)}))
  const [xml, apps, kernel, leases] = await Promise.all([
    ask(QUERY_XML),
    ask(QUERY_APPS),
    kernelLog(runner),
    readLeases(runner)
  ])
  const facts: HealthFacts = {
    smi:
      xml.exitCode === 0
        ? {gpus: parseSmiXml(xml.stdout)}
        : {failed: `${xml.stdout}\n${xml.stderr}`.trim() || `exit ${xml.exitCode}`},
    module: parseModuleVersion(moduleText),
    ...kernel,
    leftovers: findLeftovers(apps.exitCode === 0 ? apps.stdout : '', leases, pidExists),
    expected: inputs.countExpected
  }
  return {facts}
}
