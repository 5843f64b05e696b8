/** The NVIDIA container toolkit's packages, repository and runtime entry (pure). */
import type {Fragment, JsonObject} from '../../docker/daemon-fragment.js'
import {staleSourceFixes, type SourceFile, type SourceFix} from '../../models/apt-model.js'

/** The four packages, always pinned together. */
export const TOOLKIT_PACKAGES = [
  'nvidia-container-toolkit',
  'nvidia-container-toolkit-base',
  'libnvidia-container-tools',
  'libnvidia-container1'
]
/** Packages gone since toolkit 1.15; nvidia-docker2 owns daemon.json as a conffile. */
export const LEGACY_PACKAGES = ['nvidia-docker2', 'nvidia-container-runtime']

/** The apt source file this action writes for NVIDIA's repository. */
export const NVIDIA_LIST = '/etc/apt/sources.list.d/nvidia-container-toolkit.list'
/** File names the old nvidia-docker / libnvidia-container instructions used. */
const OLD_LIST_NAME =
  /\/(nvidia-docker|libnvidia-container|nvidia-container-runtime|nvidia-container-toolkit)[^/]*$/

/** Where the repository key goes: .asc for an armored key, .gpg for a binary one (apt reads both). */
export function nvidiaKeyring(armored: boolean): string {
  return `/usr/share/keyrings/nvidia-container-toolkit-keyring.${armored ? 'asc' : 'gpg'}`
}

/** The flat-repository source line NVIDIA documents (`$(ARCH)` is expanded by apt). */
export function nvidiaSourceLine(url: string, keyring: string): string {
  return `deb [signed-by=${keyring}] ${url}/$(ARCH) /\n`
}

/**
 * Old nvidia-docker / libnvidia-container sources other than ours, and how each is set aside:
 * files by their old names go whole, entries naming the repository elsewhere are disabled.
 */
export function staleNvidiaSources(files: readonly SourceFile[], url: string): SourceFix[] {
  const others = files.filter(f => f.path !== NVIDIA_LIST)
  const byName = others.filter(
    f => OLD_LIST_NAME.test(f.path) && f.path.startsWith('/etc/apt/sources.list.d/')
  )
  const rest = others.filter(f => !byName.includes(f))
  return [
    ...byName.map(f => ({path: f.path, how: 'rename' as const})),
    ...staleSourceFixes(rest, url, ['nvidia.github.io'])
  ]
}

/**
 * The daemon.json fragment for the NVIDIA runtime, per nvidia-default-runtime, and CDI where
 * nvidia-cdi turns it on (device-fix.ts decides for auto).
 */
export function nvidiaFragment(inputs: {nvidiaDefaultRuntime: boolean; cdi: boolean}): Fragment {
  const value: JsonObject = {runtimes: {nvidia: {path: 'nvidia-container-runtime', args: []}}}
  if (inputs.nvidiaDefaultRuntime) value['default-runtime'] = 'nvidia'
  if (inputs.cdi) value.features = {cdi: true}
  return {source: 'gpu-runtime', value}
}
