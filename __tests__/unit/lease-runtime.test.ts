/** The gpu-lease runtime: the container's runner, the spec it rewrites, its script (pure). */
import {describe, expect, it} from '@jest/globals'
import {
  LEASE_RUNTIME_FILES,
  leaseRuntimeFragment,
  leaseRuntimeScript,
  leaseRefusal,
  leaseSpec,
  parseSpec,
  runnerRootOf,
  specText,
  type OciSpec
} from '../../src/docker/lease-runtime.js'

const A = 'GPU-11111111-1111-4111-8111-111111111111'
const B = 'GPU-22222222-2222-4222-8222-222222222222'
// The parts of a job container's config.json that matter here, as Docker 20.10 writes them for
// the runner's `docker create ... -v /opt/runner/externals:/__e:ro ... --gpus all` of an image
// with NVIDIA_VISIBLE_DEVICES=all.
const spec = (): OciSpec => ({
  ociVersion: '1.0.2-dev',
  process: {
    env: ['PATH=/usr/bin', 'NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_VISIBLE_DEVICES=all'],
    cwd: '/'
  },
  mounts: [
    {destination: '/proc', type: 'proc', source: 'proc'},
    {
      destination: '/__e',
      type: 'bind',
      source: '/opt/runner/externals',
      options: ['rbind', 'ro', 'rprivate']
    },
    {
      destination: '/var/run/nvidia-container-devices/all',
      type: 'bind',
      source: '/dev/null',
      options: ['rbind', 'rprivate']
    },
    {
      destination: '/var/run/../run/x/../nvidia-container-devices/1',
      type: 'bind',
      source: '/dev/null'
    }
  ],
  annotations: {'cdi.k8s.io/gpu': 'nvidia.com/gpu=all', 'org.example': 'kept'},
  hooks: {
    prestart: [
      {
        path: '/usr/bin/nvidia-container-runtime-hook',
        args: ['nvidia-container-runtime-hook', 'prestart']
      }
    ]
  }
})

describe('the gpu-lease runtime', () => {
  it('keeps every integer of config.json exact, an unlimited rlimit (--ulimit memlock=-1) included', () => {
    // As Docker writes `--ulimit memlock=-1 --ulimit stack=67108864` (uint64 max for unlimited).
    const text =
      '{"process":{"rlimits":[{"type":"RLIMIT_MEMLOCK","hard":18446744073709551615,"soft":18446744073709551615},' +
      '{"type":"RLIMIT_STACK","hard":67108864,"soft":67108864}],"env":["A=12345678901234567890","B=\\"q\\" 99999999999999999"]},' +
      '"y":-9223372036854775808,"z":[0,-1,12345678901234]}'
    expect(specText(parseSpec(text))).toBe(text)
    // What a plain JSON round trip would have written, and runc refuses: above uint64.
    expect(JSON.stringify(JSON.parse(text))).toContain('18446744073709552000')
    const leased = specText(leaseSpec(parseSpec(text), [A]))
    expect(leased).toContain('"hard":18446744073709551615,"soft":18446744073709551615')
    expect(leased).toContain(`"NVIDIA_VISIBLE_DEVICES=${A}"`)
  })

  it('refuses a container given GPU device nodes itself: --privileged, --device, a CDI device', () => {
    const withDevices = (...paths: string[]): OciSpec => ({
      ...spec(),
      linux: {devices: paths.map(path => ({path})), namespaces: []}
    })
    expect(leaseRefusal(spec())).toBeUndefined()
    expect(
      leaseRefusal(withDevices('/dev/fuse', '/dev/nvidiactl', '/dev/nvidia-uvm'))
    ).toBeUndefined()
    expect(leaseRefusal(withDevices('/dev/nvidiactl', '/dev/nvidia0', '/dev/nvidia1'))).toBe(
      'the container is given GPU device nodes itself (/dev/nvidia0, /dev/nvidia1: --privileged, --device or a CDI device), which no lease can limit; with --runtime=gpu-lease, ask for GPUs through the lease alone'
    )
  })

  it("finds the container's runner from the externals it mounts at /__e, and nothing else", () => {
    expect(runnerRootOf(spec())).toBe('/opt/runner')
    expect(
      runnerRootOf({mounts: [{destination: '/__e/', source: '/home/r/actions-runner/./externals'}]})
    ).toBe('/home/r/actions-runner')
    expect(
      runnerRootOf({mounts: [{destination: '/__e', source: '/opt/runner/other'}]})
    ).toBeUndefined()
    expect(
      runnerRootOf({mounts: [{destination: '/data', source: '/opt/runner/externals'}]})
    ).toBeUndefined()
    expect(runnerRootOf({})).toBeUndefined()
  })

  it('asks the toolkit for exactly the leased GPUs, by variable and by volume mount; every other request goes', () => {
    const out = leaseSpec(spec(), [A, B])
    expect(out.process?.env).toEqual(['PATH=/usr/bin', `NVIDIA_VISIBLE_DEVICES=${A},${B}`])
    expect(out.process?.cwd).toBe('/')
    expect(out.mounts?.map(m => `${m.source}:${m.destination}`)).toEqual([
      'proc:/proc',
      '/opt/runner/externals:/__e',
      `/dev/null:/var/run/nvidia-container-devices/${A}`,
      `/dev/null:/var/run/nvidia-container-devices/${B}`
    ])
    expect(out.annotations).toEqual({'org.example': 'kept'})
    expect(out.hooks).toEqual(spec().hooks)
  })

  it('gives no GPU without a lease: void, and no mount', () => {
    const out = leaseSpec(spec(), [])
    expect(out.process?.env).toEqual(['PATH=/usr/bin', 'NVIDIA_VISIBLE_DEVICES=void'])
    expect(out.mounts?.filter(m => m.source === '/dev/null')).toEqual([])
  })

  it('is registered by its path, and only create goes through node', () => {
    expect(leaseRuntimeFragment.value).toEqual({
      runtimes: {'gpu-lease': {path: LEASE_RUNTIME_FILES.script}}
    })
    const script = leaseRuntimeScript()
    expect(script).toContain(
      `'${LEASE_RUNTIME_FILES.node}' '${LEASE_RUNTIME_FILES.bundle}' gpu-lease-create "$bundle" "$log" || exit 1\nfi\nexec "$next" "$@"\n`
    )
  })
})
