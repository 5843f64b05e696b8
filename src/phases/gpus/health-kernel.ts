/**
 * The NVIDIA driver's lines in the kernel log (pure): Xid events (`NVRM: Xid (PCI:0000:3b:00): 79,
 * pid=..., GPU has fallen off the bus.`), each classified by NVIDIA's Xid catalogue, and the
 * driver's own PCI address → UUID lines. Only what follows the driver's latest load counts: an Xid
 * logged before the module was (re)loaded belongs to a GPU state a reload has reset.
 */
import {normaliseBus} from './health-smi.js'

/** How bad an Xid is: the GPU is gone until a reboot, needs a reset, or the job itself failed. */
export type XidClass = 'fatal' | 'reset' | 'informational'

/** One entry of the catalogue. */
export interface XidKind {
  class: XidClass
  what: string
}

/**
 * NVIDIA's Xid catalogue ("Xid Errors", docs.nvidia.com/deploy/xid-errors), the entries a CI host
 * meets, as this action acts on them. `fatal`: the GPU is unusable until the host reboots (and is
 * replaced if it happens again); `reset`: the GPU must be reset (nvidia-smi -r) or the host
 * rebooted before it is trusted; `informational`: a job's own fault (a bad kernel, an illegal
 * address) that leaves the GPU usable. An Xid not listed here is reported, never held against a GPU.
 */
export const XID_CATALOGUE: Readonly<Record<number, XidKind>> = {
  13: {class: 'informational', what: 'graphics engine exception (usually the application)'},
  31: {class: 'informational', what: 'GPU memory page fault (usually the application)'},
  43: {class: 'informational', what: 'GPU stopped processing (the application was stopped)'},
  45: {class: 'informational', what: 'preemptive cleanup after an earlier error'},
  48: {class: 'reset', what: 'double-bit ECC error (DBE)'},
  61: {class: 'reset', what: 'internal micro-controller breakpoint'},
  62: {class: 'reset', what: 'internal micro-controller halt'},
  63: {class: 'reset', what: 'ECC page retirement or row remapping recorded: a reset applies it'},
  64: {class: 'fatal', what: 'ECC page retirement or row remapping failed'},
  68: {class: 'informational', what: 'video decoder exception'},
  69: {class: 'informational', what: 'graphics engine class error (usually the application)'},
  74: {class: 'reset', what: 'NVLink error'},
  79: {class: 'fatal', what: 'GPU has fallen off the bus'},
  92: {class: 'informational', what: 'high single-bit ECC error rate'},
  94: {class: 'reset', what: 'contained ECC error'},
  95: {class: 'reset', what: 'uncontained ECC error'},
  109: {class: 'informational', what: 'context switch timeout'},
  119: {class: 'reset', what: 'GSP RPC timeout'},
  120: {class: 'reset', what: 'GSP error'},
  140: {class: 'reset', what: 'unrecovered ECC error'},
  154: {class: 'reset', what: 'GPU recovery action changed'}
}

/** The catalogue entry of an Xid; an unlisted one is informational. */
export function xidKind(code: number): XidKind {
  return (
    XID_CATALOGUE[code] ?? {
      class: 'informational',
      what: "not in this action's catalogue: see NVIDIA's Xid list"
    }
  )
}

/** One Xid event as the kernel logged it. */
export interface XidEvent {
  /** Normalised PCI address (`0000:3b:00`). */
  bus: string
  code: number
  /** The kernel's line, from `NVRM:` on: the evidence. */
  line: string
}

/** What the kernel log says of the NVIDIA GPUs since the driver's latest load. */
export interface KernelLog {
  xids: XidEvent[]
  /** PCI address → UUID, from the driver's `NVRM: GPU at PCI:… : GPU-…` lines. */
  gpuAt: Map<string, string>
}

const XID = /NVRM: Xid \((?:PCI:)?([0-9a-f]+:[0-9a-f]+:[0-9a-f]+(?:\.[0-7])?)\): (\d+)\b.*$/i
const GPU_AT = /NVRM: GPU at PCI:([0-9a-f]+:[0-9a-f]+:[0-9a-f]+(?:\.[0-7])?): (GPU-[0-9a-f-]+)/i
const LOADING = /NVRM: loading NVIDIA UNIX/

/** Reads `dmesg` (or syslog) text: every Xid since the NVIDIA module's latest load. */
export function parseKernelLog(text: string): KernelLog {
  let xids: XidEvent[] = []
  const gpuAt = new Map<string, string>()
  for (const raw of text.split('\n')) {
    if (LOADING.test(raw)) {
      xids = []
      continue
    }
    const at = GPU_AT.exec(raw)
    if (at) gpuAt.set(normaliseBus(at[1]), at[2])
    const m = XID.exec(raw)
    if (!m) continue
    xids.push({bus: normaliseBus(m[1]), code: Number(m[2]), line: m[0].trim()})
  }
  return {xids, gpuAt}
}
