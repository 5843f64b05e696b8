/** The daemon phase's inputs: their action.yml defaults, their type, and their parser (pure). */
import type {Fragment, JsonObject} from '../../docker/daemon-fragment.js'
import type {Proxies} from '../../docker/proxy.js'
import {
  bool,
  existingPath,
  fail,
  imageReference,
  oneOf,
  optional,
  packageVersion,
  tristate,
  url,
  type InputHost,
  type RawInputs,
  type Tristate
} from '../../input-fields.js'
import {InputError} from '../../errors.js'
import {contradictions} from './daemon-config.js'
import {nvidiaFragment} from './toolkit.js'

/** The daemon config and NVIDIA inputs with their action.yml defaults. */
export const DAEMON_INPUTS = {
  'daemon-config': '',
  'gpu-runtime': 'auto',
  'nvidia-default-runtime': 'true',
  'nvidia-toolkit-version': '',
  'nvidia-apt-url': 'https://nvidia.github.io/libnvidia-container/stable/deb',
  'nvidia-apt-key': 'https://nvidia.github.io/libnvidia-container/gpgkey',
  'nvidia-cdi': 'auto',
  'gpu-check': 'auto',
  'gpu-check-image': '',
  'allow-restart': 'false'
} as const

type Raw = RawInputs<keyof typeof DAEMON_INPUTS>

/** What the daemon config phase's inputs say. */
export interface DaemonInputs {
  daemonConfig?: JsonObject
  gpuRuntime: 'auto' | 'nvidia' | 'none'
  nvidiaDefaultRuntime: boolean
  nvidiaToolkitVersion?: string
  nvidiaAptUrl: string
  /** URL or absolute path of the repository's key. */
  nvidiaAptKey: string
  /**
   * CDI (features.cdi and a generated spec): true, false, or auto (on where it is the fix for
   * containers losing GPUs on daemon-reload: systemd's cgroup driver on Docker 25 or later).
   */
  nvidiaCdi: Tristate
  gpuCheck: Tristate
  gpuCheckImage?: string
  /** A daemon.json change may restart Docker even where live-restore cannot protect running containers. */
  allowRestart: boolean
}

/** What the daemon phase reads: its inputs, the air-gapped folder, and what the registry adds to daemon.json. */
export interface DaemonSettings extends DaemonInputs {
  offlineDebs?: string
  /** insecure-registries and registry-mirrors entries for the local registry. */
  registryFragments: readonly Fragment[]
  /** The proxies the daemon pulls through; undefined when none is set. */
  proxies?: Proxies
  /** runner-hooks: install registers the gpu-lease runtime (the hooks phase writes its files). */
  leaseRuntime?: boolean
}

function parseDaemonConfig(raw: Raw): JsonObject | undefined {
  const value = optional(raw, 'daemon-config')
  if (value === undefined) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch (e) {
    fail('daemon-config', value, `not valid JSON (${(e as Error).message})`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail('daemon-config', value, 'use a JSON object, e.g. {"log-driver": "local"}')
  }
  return parsed as JsonObject
}

type NvidiaChoice = Pick<DaemonInputs, 'gpuRuntime' | 'nvidiaDefaultRuntime' | 'nvidiaCdi'>

/** The contradiction people meet most, with its own advice. */
function refuseOtherDefaultRuntime(
  config: JsonObject | undefined,
  nvidia: Omit<NvidiaChoice, 'nvidiaCdi'>
): void {
  const wanted = config?.['default-runtime']
  if (
    wanted !== undefined &&
    wanted !== 'nvidia' &&
    nvidia.nvidiaDefaultRuntime &&
    nvidia.gpuRuntime !== 'none'
  ) {
    fail(
      'daemon-config',
      JSON.stringify(wanted),
      'sets default-runtime while nvidia-default-runtime is true: set nvidia-default-runtime: false, or drop default-runtime'
    )
  }
}

/**
 * daemon-config against everything the NVIDIA inputs write: found now, before anything changes,
 * even when no GPU turns up later (the same inputs must not pass on one host and fail on another
 * after the engine was installed).
 */
function refuseContradictions(config: JsonObject | undefined, nvidia: NvidiaChoice): void {
  if (config === undefined || nvidia.gpuRuntime === 'none') return
  const fragment = nvidiaFragment({
    nvidiaDefaultRuntime: nvidia.nvidiaDefaultRuntime,
    cdi: nvidia.nvidiaCdi === 'true'
  })
  const clash = contradictions([fragment, {source: 'daemon-config', value: config}])
  if (clash.length > 0) {
    throw new InputError(
      'daemon-config',
      JSON.stringify(config),
      `contradicts other inputs: ${clash.join('; ')}`
    )
  }
}

/** The toolkit repository's key: an absolute path to a file, or a URL; undefined when empty. */
function aptKey(raw: Raw, host: InputHost): string | undefined {
  return raw['nvidia-apt-key'].trim().startsWith('/')
    ? existingPath(raw, 'nvidia-apt-key', host, 'file')
    : url(raw, 'nvidia-apt-key', ['http:', 'https:', 'file:'])
}

/** Validates the daemon config and NVIDIA inputs (pure apart from `host.pathKind`); throws InputError. */
export function parseDaemonInputs(raw: Raw, host: InputHost): DaemonInputs {
  const daemonConfig = parseDaemonConfig(raw)
  const gpuRuntime = oneOf(raw, 'gpu-runtime', ['auto', 'nvidia', 'none'] as const)
  const nvidiaDefaultRuntime = bool(raw, 'nvidia-default-runtime')
  refuseOtherDefaultRuntime(daemonConfig, {gpuRuntime, nvidiaDefaultRuntime})
  const nvidiaToolkitVersion = packageVersion(
    raw,
    'nvidia-toolkit-version',
    'use a package version such as 1.17.8-1'
  )
  const aptUrl = url(raw, 'nvidia-apt-url', ['http:', 'https:', 'file:'])
  const key = aptKey(raw, host)
  const nvidiaAptUrl = aptUrl ?? fail('nvidia-apt-url', '', 'use the URL of the toolkit repository')
  const nvidiaAptKey = key ?? fail('nvidia-apt-key', '', 'use a URL or an absolute path')
  const nvidiaCdi = tristate(raw, 'nvidia-cdi')
  refuseContradictions(daemonConfig, {gpuRuntime, nvidiaDefaultRuntime, nvidiaCdi})
  return {
    daemonConfig,
    gpuRuntime,
    nvidiaDefaultRuntime,
    nvidiaToolkitVersion,
    nvidiaAptUrl,
    nvidiaAptKey,
    nvidiaCdi,
    gpuCheck: tristate(raw, 'gpu-check'),
    gpuCheckImage: imageReference(raw, 'gpu-check-image'),
    allowRestart: bool(raw, 'allow-restart')
  }
}
