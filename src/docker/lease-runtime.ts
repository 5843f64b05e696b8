/**
 * The gpu-lease runtime (pure): a Docker runtime that runner-hooks: install registers, for
 * `container:` jobs that write `options: --runtime=gpu-lease`. On `create` it rewrites the
 * container's OCI spec so that it gets exactly its runner's leased GPUs, in both gpu-isolation
 * modes, and hands every command on to nvidia-container-runtime (runc without the toolkit).
 */
import type {Fragment} from './daemon-fragment.js'

/** Its folder: root's, beside the runners' hook folders (runner-hooks: install writes both). */
const DIR = '/usr/local/lib/docker-gpu-setup/gpu-lease'

/** The runtime's name in daemon.json, as a workflow names it: `--runtime=gpu-lease`. */
export const LEASE_RUNTIME = 'gpu-lease'

/**
 * Its files, root's and shared by every runner of the host (it finds each container's runner):
 * the script Docker runs, and the bundle and node it runs on `create`. The node is a copy: the
 * runner's own node lives in the runner user's folder, and what dockerd runs as root must not be
 * replaceable by that user.
 */
export const LEASE_RUNTIME_FILES = {
  dir: DIR,
  script: `${DIR}/runtime`,
  bundle: `${DIR}/index.js`,
  packageJson: `${DIR}/package.json`,
  node: `${DIR}/node`
} as const

/** daemon.json's entry for the runtime (merged by the daemon phase; runtimes reload on SIGHUP). */
export const leaseRuntimeFragment: Fragment = {
  source: 'runner-hooks',
  value: {runtimes: {[LEASE_RUNTIME]: {path: LEASE_RUNTIME_FILES.script}}}
}

/** Where the runner mounts its `externals` folder in a job container (ContainerInfo.cs). */
export const EXTERNALS_MOUNT = '/__e'

/** The toolkit's folder of device requests as volume mounts (cuda_image.go). */
export const DEVICE_MOUNT_ROOT = '/var/run/nvidia-container-devices'

/**
 * The runtime script. Only `create` (the first word that is neither an option nor the value of
 * runc's global --root, --log, --log-format, --criu or --rootless) runs node, to rewrite the
 * bundle's config.json; a failed rewrite fails the create (no container, rather than one with
 * GPUs that are not its own), its reason written to the runtime's --log, where Docker reads it. Every other command goes straight on, at a shell's speed.
 */
export function leaseRuntimeScript(): string {
  const f = LEASE_RUNTIME_FILES
  return `#!/bin/bash
# docker-gpu-setup (runner-hooks: install): the gpu-lease runtime. On create, the container gets
# exactly the GPUs leased to its runner's job (none without a lease); then, as every other
# command, it goes on to nvidia-container-runtime (runc where the toolkit is not installed).
set -u
next=$(command -v nvidia-container-runtime || command -v runc) || {
  echo 'gpu-lease: neither nvidia-container-runtime nor runc is on PATH' >&2
  exit 1
}
args=("$@") cmd='' bundle=. log=''
for ((i = 0; i < \${#args[@]}; i++)); do
  a=\${args[i]}
  if [ -z "$cmd" ]; then
    case $a in
      --log) i=$((i + 1)) && log=\${args[i]:-} ;;
      --log=*) log=\${a#--log=} ;;
      --root | --log-format | --criu | --rootless) i=$((i + 1)) ;;
      -*) ;;
      *) cmd=$a ;;
    esac
  elif [ "$cmd" = create ]; then
    case $a in
      --bundle | -b) i=$((i + 1)) && bundle=\${args[i]:-.} ;;
      --bundle=*) bundle=\${a#--bundle=} ;;
    esac
  fi
done
if [ "$cmd" = create ]; then
  '${f.node}' '${f.bundle}' gpu-lease-create "$bundle" "$log" || exit 1
fi
exec "$next" "$@"
`
}

/** The parts of an OCI runtime spec (config.json) the runtime reads and changes. */
export interface OciSpec {
  process?: {env?: string[]; [k: string]: unknown}
  mounts?: {destination: string; source?: string; type?: string; options?: string[]}[]
  annotations?: Record<string, string>
  linux?: {devices?: {path: string}[]; [k: string]: unknown}
  [k: string]: unknown
}

/** An integer too large for a double, through JSON.parse: a string marked by a NUL (escaped). */
const BIG = '\\u0000oci-integer:'

/**
 * Parses config.json keeping every integer exact (an OCI spec holds integers, no fractions).
 * Docker writes an unlimited rlimit (`--ulimit memlock=-1`, as NVIDIA's own PyTorch containers
 * run) as 18446744073709551615, which a double rounds to a number above uint64 that runc refuses:
 * such integers become marked strings.
 */
export function parseSpec(text: string): OciSpec {
  let out = ''
  let from = 0
  // Every string literal, or a number outside one; only long integers are rewritten.
  for (const m of text.matchAll(/"(?:[^"\\]|\\.)*"|(?<![\d.eE+-])-?\d{16,}(?![.\deE])/g)) {
    if (m[0].startsWith('"')) continue
    out += `${text.slice(from, m.index)}"${BIG}${m[0]}"`
    from = m.index + m[0].length
  }
  return JSON.parse(out + text.slice(from)) as OciSpec
}

/** config.json's text for a spec parseSpec read, its long integers as they were. */
export function specText(spec: OciSpec): string {
  return JSON.stringify(spec).replace(/"\\u0000oci-integer:(-?\d+)"/g, '$1')
}

/**
 * Why the lease cannot hold for this container, or undefined: a GPU device node in the spec
 * (`--device /dev/nvidia1`, a CDI device Docker resolved itself such as `nvidia.com/gpu=all`, or
 * `--privileged`, which puts every host device in it) reaches the GPU whatever the toolkit is told.
 */
export function leaseRefusal(spec: OciSpec): string | undefined {
  const nodes = (spec.linux?.devices ?? [])
    .map(d => d.path)
    .filter(p => /^\/dev\/nvidia\d+$/.test(p))
  if (nodes.length === 0) return undefined
  return `the container is given GPU device nodes itself (${nodes.join(', ')}: --privileged, --device or a CDI device), which no lease can limit; with --runtime=${LEASE_RUNTIME}, ask for GPUs through the lease alone`
}

/** An absolute path without empty, `.` and `..` parts (as filepath.Clean leaves it). */
function clean(p: string): string {
  const parts: string[] = []
  for (const part of p.split('/')) {
    if (part === '..') parts.pop()
    else if (part !== '' && part !== '.') parts.push(part)
  }
  return `/${parts.join('/')}`
}

/** The runner a container belongs to: the folder above the `externals` it mounts at /__e. */
export function runnerRootOf(spec: OciSpec): string | undefined {
  const m = (spec.mounts ?? []).find(m => clean(m.destination) === EXTERNALS_MOUNT)
  if (!m?.source?.startsWith('/')) return undefined
  const source = clean(m.source)
  return source.endsWith('/externals') ? source.slice(0, -'/externals'.length) || '/' : undefined
}

/** The toolkit counts a mount whose destination is under its folder (filepath.Clean'd) as a request. */
const underDeviceRoot = (destination: string): boolean =>
  `${clean(destination)}/`.startsWith(`${DEVICE_MOUNT_ROOT}/`)

/**
 * The spec with exactly `uuids` asked of the toolkit, both ways it reads them: the variable
 * (honoured while envvar-when-unprivileged is on, and for a privileged container) and the volume
 * mounts (honoured with as-volume-mounts on, as strict sets it). Every other request goes: the
 * image's or `-e` NVIDIA_VISIBLE_DEVICES, `--gpus` (Docker passes it as that variable), other
 * mounts under the toolkit's folder, and CDI annotations (read before both). No GPU: `void`.
 */
export function leaseSpec(spec: OciSpec, uuids: readonly string[]): OciSpec {
  const env = (spec.process?.env ?? []).filter(e => !e.startsWith('NVIDIA_VISIBLE_DEVICES='))
  env.push(`NVIDIA_VISIBLE_DEVICES=${uuids.length > 0 ? uuids.join(',') : 'void'}`)
  const mounts = (spec.mounts ?? []).filter(m => !underDeviceRoot(m.destination))
  for (const uuid of uuids) {
    mounts.push({
      destination: `${DEVICE_MOUNT_ROOT}/${uuid}`,
      type: 'bind',
      source: '/dev/null',
      options: ['rbind', 'ro', 'rprivate']
    })
  }
  const annotations = Object.fromEntries(
    Object.entries(spec.annotations ?? {}).filter(([k]) => !k.startsWith('cdi.k8s.io/'))
  )
  return {
    ...spec,
    process: {...spec.process, env},
    mounts,
    ...(spec.annotations ? {annotations} : {})
  }
}
