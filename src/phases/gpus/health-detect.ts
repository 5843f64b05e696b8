/**
 * Reads what the GPU health gate judges (effects only): `nvidia-smi -q -x`, its compute processes,
 * the kernel log (`dmesg`: `journalctl -k` is empty in containers and without a persistent
 * journal), the loaded module's version and the GPU leases. Changes nothing.
 */
import {errorMessage, tailLines} from '../../errors.js'
import type {CommandRunner} from '../../exec/runner.js'
import {devCharLinks} from '../../system/dev-char.js'
import {readFileMaybe} from '../../system/files.js'
import {driverGpuAddresses, findNvidiaSmi} from '../../system/nvidia-smi.js'
import {pidAlive} from '../../system/process.js'
import type {PhaseContext} from '../pipeline.js'
import {readLeases} from './detect.js'
import {nvidiaCdiDevices} from './cdi.js'
import {QUERY_APPS} from './gpu-query.js'
import {installedPackages} from '../../system/apt.js'
import {
  RUNTIME_CONFIG,
  deviceLoss,
  dockerReadsCdi,
  parseRuntimeMode,
  type DeviceLossVerdict
} from '../../models/device-loss.js'
import {findLeftovers, type HealthFacts} from './health.js'
import {MODULE_VERSION_FILE, parseMismatch, parseModuleVersion} from './health-driver.js'
import type {GpuHealthInputs} from './health-inputs.js'
import {parseKernelLog, type KernelLog} from './health-kernel.js'
import {QUERY_XML, normaliseBus, parseSmiXml, perGpuQueries} from './health-smi.js'

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

/** Where the driver has this runner's GPUs, in nvidia-smi's index order (PCI order); undefined when unreadable. */
async function driverGpus(): Promise<string[] | undefined> {
  return (await driverGpuAddresses())?.filter(n => normaliseBus(n) !== '')
}

type Ask = (args: string[]) => Promise<{exitCode: number; stdout: string; stderr: string}>

/**
 * When the query of all GPUs failed but not for the driver as a whole (no version mismatch),
 * each GPU alone: one GPU NVML cannot get a handle for makes `nvidia-smi -q -x` abort for all.
 * Stays the failure when no GPU answers alone.
 */
async function eachGpu(
  ask: Ask,
  buses: readonly string[] | undefined,
  failed: string
): Promise<HealthFacts['smi']> {
  if (parseMismatch(failed) || buses === undefined || buses.length < 2) return {failed}
  const answers = await Promise.all(buses.map((_, i) => ask([...QUERY_XML, '-i', String(i)])))
  if (answers.every(a => a.exitCode !== 0)) return {failed}
  return {
    gpus: perGpuQueries(
      answers.map((a, i) => ({
        bus: buses[i],
        ok: a.exitCode === 0,
        output: a.exitCode === 0 ? a.stdout : `${a.stdout}\n${a.stderr}`
      }))
    )
  }
}

/** Whether running containers lose their GPUs on daemon-reload here (reads docker info, the toolkit). */
async function detectDeviceLoss(ctx: PhaseContext<GpuHealthInputs>): Promise<DeviceLossVerdict> {
  const {runner} = ctx
  const [info, toolkit, toml, links] = await Promise.all([
    runner
      .run(['docker', 'info', '--format', '{{.CgroupDriver}} {{.ServerVersion}}'], {
        root: true,
        allowFailure: true,
        timeoutSeconds: 15
      })
      .catch(() => ({exitCode: -1, stdout: ''})),
    installedPackages(runner, ['nvidia-container-toolkit']),
    readFileMaybe(runner, RUNTIME_CONFIG),
    devCharLinks()
  ])
  const [driver, version] = info.exitCode === 0 ? info.stdout.trim().split(' ') : []
  // Only where CDI is the fix is it asked whether Docker can inject GPUs by CDI name.
  const cdiReady =
    driver === 'systemd' && dockerReadsCdi(version)
      ? (await nvidiaCdiDevices(runner, ctx.host.dockerSocket)).size > 0
      : false
  return deviceLoss({
    systemd: ctx.host.systemd,
    cgroupDriver: driver,
    dockerVersion: version,
    toolkitVersion: toolkit.get('nvidia-container-toolkit'),
    runtimeMode: parseRuntimeMode(toml),
    devCharLinks: links,
    cdiReady
  })
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
  const [xml, apps, kernel, leases, loss] = await Promise.all([
    ask(QUERY_XML),
    ask(QUERY_APPS),
    kernelLog(runner),
    readLeases(runner),
    detectDeviceLoss(ctx)
  ])
  const buses = await driverGpus()
  const facts: HealthFacts = {
    smi:
      xml.exitCode === 0
        ? {gpus: parseSmiXml(xml.stdout)}
        : await eachGpu(
            ask,
            buses,
            `${xml.stdout}\n${xml.stderr}`.trim() || `exit ${xml.exitCode}`
          ),
    driverBuses: buses && new Set(buses.map(normaliseBus)),
    module: parseModuleVersion(moduleText),
    ...kernel,
    // With teardown on, the lease takeover ends them and waits for an idle GPU.
    leftovers: inputs.teardown
      ? new Map()
      : findLeftovers(apps.exitCode === 0 ? apps.stdout : '', leases, pidAlive),
    expected: inputs.countExpected,
    deviceLoss: loss
  }
  return {facts}
}
