/**
 * The fix NVIDIA documents for containers that lose their GPUs on `systemctl daemon-reload`, as
 * changes to make (pure): a CDI spec Docker injects GPUs from (`--device nvidia.com/gpu=<uuid>`),
 * generated for the running driver and toolkit, and the /dev/char links (with the udev rule that
 * makes them again when the driver loads) without which systemd drops even a device in the
 * container's spec. NVIDIA's troubleshooting page ("Containers losing access to GPUs with error:
 * Failed to initialize NVML: Unknown Error", docs.nvidia.com/datacenter/cloud-native/
 * container-toolkit/latest/troubleshooting.html, and NVIDIA/nvidia-docker issue 1730) lists these.
 * A spec or rule this action did not write is the administrator's: used as it is, never replaced.
 */
import type {Tristate} from '../../input-fields.js'
import {
  NVIDIA_CTK,
  deviceLoss,
  toolkitRefreshesCdi,
  type DeviceLossFix,
  type DeviceLossVerdict
} from '../../models/device-loss.js'

/** Where NVIDIA's install guide has `nvidia-ctk cdi generate` write the spec ("Generating a CDI specification"). */
export const CDI_SPEC = '/etc/cdi/nvidia.yaml'
/**
 * Where the spec that toolkit 1.18's nvidia-cdi-refresh.service keeps (regenerated on each driver
 * or toolkit change, deployments/systemd in NVIDIA/nvidia-container-toolkit) lies: when that unit
 * is there and has written it, the toolkit owns the spec and this action keeps none beside it
 * (two specs naming the same devices: the one this action no longer refreshes would go stale).
 */
export const TOOLKIT_CDI_SPEC = '/var/run/cdi/nvidia.yaml'
/** What the spec this action generated was generated for (driver, toolkit, the spec's hash). */
export const CDI_RECORD = '/var/lib/docker-gpu-setup/cdi-spec.json'
/** The rule file NVIDIA's troubleshooting page writes (its name and folder as documented). */
export const DEV_CHAR_RULE = '/lib/udev/rules.d/71-nvidia-dev-char.rules'

/**
 * The rule's text as NVIDIA documents it: when the nvidia driver binds, the links are made again
 * (the driver's device nodes come back without them after each load).
 */
export const DEV_CHAR_RULE_TEXT = `# This will create /dev/char symlinks to all device nodes
ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", RUN+="${NVIDIA_CTK} system create-dev-char-symlinks --create-all"
`

/** What a generated spec was generated for. */
export interface CdiRecord {
  driver: string
  toolkit: string
  /** SHA-256 of the spec as generated: a spec with another hash is not this action's to replace. */
  sha256: string
}

/** The record's text. */
export function cdiRecordText(r: CdiRecord): string {
  return `${JSON.stringify(r)}\n`
}

/** The record, or undefined when the text is not one. */
export function parseCdiRecord(text: string | undefined): CdiRecord | undefined {
  try {
    const r = JSON.parse(text ?? '') as Partial<CdiRecord> | null
    return typeof r?.driver === 'string' &&
      typeof r.toolkit === 'string' &&
      typeof r.sha256 === 'string'
      ? {driver: r.driver, toolkit: r.toolkit, sha256: r.sha256}
      : undefined
  } catch {
    return undefined
  }
}

/** What decides the fix and whether it is in place. */
export interface DeviceFixFacts {
  systemd: boolean
  /** The running daemon's; undefined when it does not answer. */
  cgroupDriver?: string
  dockerVersion?: string
  /** The running daemon has CDI on (docker info lists CDI spec folders). */
  cdiOn: boolean
  /** The driver nvidia-smi reports; undefined without one (no spec can be generated then). */
  driver?: string
  /** Every /dev/nvidia* character device has its /dev/char/MAJOR:MINOR link. */
  devCharLinks: boolean
  /** The udev rule file's text; undefined when there is none. */
  rule?: string
  /** SHA-256 of CDI_SPEC; undefined when there is none. It is this action's when the record has it. */
  specSha256?: string
  record?: CdiRecord
  /** The toolkit's nvidia-cdi-refresh.service is installed and its spec exists. */
  toolkitSpec: boolean
}

/** One change of the fix, in the order it is made. */
export type DeviceFixAction =
  | {kind: 'cdi-spec'; driver: string}
  | {kind: 'cdi-spec-remove'}
  | {kind: 'dev-char-rule'; text: string}
  | {kind: 'dev-char-links'}

/** The fix for this host: what is reported, whether daemon.json turns CDI on, what to change. */
export interface DeviceFixPlan {
  /** `none`: containers do not lose GPUs here; the others as device-loss names them. */
  fix: DeviceLossFix | 'none'
  why: string
  /** features.cdi goes into daemon.json (nvidia-cdi: true, or auto where CDI is the fix and nothing blocks it). */
  cdi: boolean
  actions: DeviceFixAction[]
  warnings: string[]
}

/** The toolkit the fix runs with: installed, or what this run installs (a pin, else the repository's newest). */
export interface ToolkitState {
  version?: string
  installing: boolean
}

/** Why auto leaves CDI off: daemon-config sets features.cdi false, or turning it on needs a refused restart. */
export type CdiBlock = 'config' | 'restart'

/** One part of the fix: its changes and warnings. */
interface Part {
  actions: DeviceFixAction[]
  warnings: string[]
}

/** A part that changes nothing, and why. */
const nothing = (...warnings: string[]): Part => ({actions: [], warnings})

/**
 * The spec (pure). The toolkit's own spec (nvidia-cdi-refresh) replaces this action's, which is
 * removed with its record; a toolkit this run installs from 1.18 writes its own, so none is
 * generated. Else the spec is generated where there is none, or again where it is this action's
 * (its hash is the record's) and the driver or the toolkit changed; any other spec is the
 * administrator's (another device-name strategy, MIG, csv mode) and is used as it is.
 */
function specPart(f: DeviceFixFacts, version: string, toolkit: ToolkitState): Part {
  const r = f.record
  const ours = f.specSha256 !== undefined && r?.sha256 === f.specSha256
  if (f.toolkitSpec) return ours ? {actions: [{kind: 'cdi-spec-remove'}], warnings: []} : nothing()
  const pinned = toolkit.installing ? toolkit.version : undefined
  if (f.systemd && pinned !== undefined && toolkitRefreshesCdi(pinned)) return nothing()
  if (f.specSha256 !== undefined && !ours) {
    return nothing(
      `CDI: ${CDI_SPEC} was not generated by this action (or was changed since): it is the administrator's and is used as it is; remove it to let this action generate and keep it current.`
    )
  }
  if (ours && r.driver === f.driver && r.toolkit === version) return nothing()
  if (f.driver === undefined) {
    return nothing(
      `CDI: no NVIDIA driver answers (nvidia-smi), so no spec is generated yet (${CDI_SPEC}); run again once the driver is loaded.`
    )
  }
  return {actions: [{kind: 'cdi-spec', driver: f.driver}], warnings: []}
}

/** NVIDIA's udev rule: written where there is none; a rule with other text is the administrator's and kept. */
function rulePart(rule: string | undefined): Part {
  if (rule === undefined)
    return {actions: [{kind: 'dev-char-rule', text: DEV_CHAR_RULE_TEXT}], warnings: []}
  if (rule === DEV_CHAR_RULE_TEXT) return nothing()
  return nothing(
    `GPU device fix: ${DEV_CHAR_RULE} is not the rule this action writes (edited by hand?): it is kept as it is; remove it to let this action write NVIDIA's rule.`
  )
}

/** The fix this run applies; where CDI is the fix but stays off, the links are what is applied. */
function fixApplied(cdi: boolean, verdict: DeviceLossVerdict): DeviceFixPlan['fix'] {
  if (cdi) return 'cdi'
  if (!verdict.atRisk || verdict.fix === undefined) return 'none'
  return verdict.fix === 'cdi' ? 'dev-char-symlinks' : verdict.fix
}

/** Why CDI stays off where it is the fix, and what containers need instead. */
function cdiOffWarning(nvidiaCdi: Tristate, blocked: CdiBlock | undefined): string {
  const instead =
    'containers given GPUs with --gpus still lose them on systemctl daemon-reload; give them the /dev/nvidia* nodes with --device too'
  if (nvidiaCdi === 'auto' && blocked === 'restart') {
    return `nvidia-cdi auto: turning CDI on (features.cdi) needs a restart of Docker, refused here (running containers that live-restore cannot keep in swarm mode), so only the /dev/char links are made; ${instead}, or run again when they are done (or with allow-restart: true) to turn CDI on.`
  }
  if (nvidiaCdi === 'auto') {
    return `nvidia-cdi auto: daemon-config sets features.cdi false, so only the /dev/char links are made; ${instead}.`
  }
  return `nvidia-cdi is false: ${instead}, or set nvidia-cdi: auto and use --device nvidia.com/gpu=<uuid> (the cdi-devices output).`
}

/**
 * The fix for this host (pure). nvidia-cdi `true` always turns CDI on with a spec; `auto` does
 * where the device-loss table names CDI (systemd's cgroup driver, Docker 25 or later, nvidia-ctk)
 * and nothing blocks it; `false` never. Where containers are at risk, the /dev/char links and their
 * udev rule are made in both cases: the e2e device-reload test shows that a device in the
 * container's spec (how CDI injects GPUs) is lost too while its link is missing. Nothing is
 * planned that is already so, and no file the administrator made (spec, rule) is replaced.
 */
export function planDeviceFix(
  f: DeviceFixFacts,
  nvidiaCdi: Tristate,
  toolkit: ToolkitState,
  /** What keeps auto from turning CDI on, if anything. */
  blocked?: CdiBlock
): DeviceFixPlan {
  // A toolkit this run installs is the repository's (1.12 or later) unless a pin says otherwise.
  const version = toolkit.version ?? (toolkit.installing ? '99' : undefined)
  const verdict = deviceLoss({
    systemd: f.systemd,
    cgroupDriver: f.cgroupDriver,
    dockerVersion: f.dockerVersion,
    toolkitVersion: version,
    devCharLinks: f.devCharLinks
  })
  const cdi = nvidiaCdi === 'true' || (nvidiaCdi === 'auto' && !blocked && verdict.fix === 'cdi')
  const links = verdict.atRisk && verdict.fix !== 'upgrade-toolkit'
  const parts = [
    cdi && version !== undefined ? specPart(f, version, toolkit) : undefined,
    links ? rulePart(f.rule) : undefined,
    links && !f.devCharLinks
      ? {actions: [{kind: 'dev-char-links'} as const], warnings: []}
      : undefined
  ].filter(p => p !== undefined)
  const warnings = parts.flatMap(p => p.warnings)
  if (verdict.fix === 'upgrade-toolkit') warnings.push(`GPU device fix: ${verdict.why}.`)
  if (verdict.atRisk && verdict.fix === 'cdi' && !cdi)
    warnings.push(cdiOffWarning(nvidiaCdi, blocked))
  return {
    fix: fixApplied(cdi, verdict),
    why: cdi && !verdict.atRisk ? 'nvidia-cdi is true' : verdict.why,
    cdi,
    actions: parts.flatMap(p => p.actions),
    warnings
  }
}

/** The planned change in words. */
export function describeDeviceFix(a: DeviceFixAction): string {
  switch (a.kind) {
    case 'cdi-spec':
      return `generate the CDI spec ${CDI_SPEC} for driver ${a.driver} (nvidia-ctk cdi generate)`
    case 'cdi-spec-remove':
      return `remove ${CDI_SPEC} and its record ${CDI_RECORD}: the toolkit keeps its own spec, ${TOOLKIT_CDI_SPEC} (nvidia-cdi-refresh)`
    case 'dev-char-rule':
      return `write ${DEV_CHAR_RULE} (makes the /dev/char links again when the driver loads)`
    case 'dev-char-links':
      return 'create the /dev/char links of the NVIDIA devices (nvidia-ctk system create-dev-char-symlinks --create-all)'
  }
}
