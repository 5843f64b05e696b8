/** The gpu-lease runtime: the container's runner, the spec it rewrites, its script (pure). */
import {describe, expect, it} from '@jest/globals'
import {
  LEASE_RUNTIME_FILES,
  leaseRuntimeFragment,
  leaseRuntimeScript,
  leaseSpec,
  runnerRootOf,
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
      `'${LEASE_RUNTIME_FILES.node}' '${LEASE_RUNTIME_FILES.bundle}' gpu-lease-create "$bundle" || exit 1\nfi\nexec "$next" "$@"\n`
    )
  })
})
