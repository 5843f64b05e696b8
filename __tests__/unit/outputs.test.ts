import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {
  OUTPUT_NAMES,
  digestsText,
  imagesJson,
  outputValues,
  type ImageResult
} from '../../src/outputs.js'
import type {PushResult} from '../../src/phases/push/push-result.js'

const D = `sha256:${'a'.repeat(64)}`

describe('outputs', () => {
  it('names exactly the outputs action.yml declares, in its order', () => {
    const action = parse(readFileSync('action.yml', 'utf8')) as {outputs: Record<string, unknown>}
    expect([...OUTPUT_NAMES]).toEqual(Object.keys(action.outputs))
  })

  it('writes every output, empty when nothing set it', () => {
    const values = outputValues({})
    expect(Object.keys(values)).toEqual([...OUTPUT_NAMES])
    expect(Object.values(values).every(v => v === '')).toBe(true)
  })

  it('writes booleans, the GPU and the images as text', () => {
    const images: ImageResult[] = [
      {source: 'a', target: 'localhost:5000/a:1', digest: D, size: 10, status: 'pushed'}
    ]
    expect(
      outputValues({
        dockerVersion: '27.3.1',
        dockerChanged: false,
        nvidiaRuntime: true,
        gpu: {count: 2, driverVersion: '550.54.15'},
        registry: 'localhost:5000',
        images
      })
    ).toEqual({
      'docker-version': '27.3.1',
      'docker-changed': 'false',
      'docker-gpu-options': '',
      'daemon-config-changed': '',
      'nvidia-runtime': 'true',
      'gpu-count': '2',
      'driver-version': '550.54.15',
      'cuda-version': '',
      'toolkit-version': '',
      'gpu-device-fix': '',
      'daemon-change': '',
      registry: 'localhost:5000',
      'registry-started': '',
      images: imagesJson(images),
      digests: `localhost:5000/a:1@${D}`,
      caches: '',
      'gpu-uuids': '',
      'gpu-indexes': '',
      'gpu-isolation': '',
      'docker-gpus': '',
      'cdi-devices': '',
      'gpu-health': '',
      'freed-bytes': '',
      teardown: ''
    })
  })

  it('writes the health verdict as JSON keyed by GPU UUID', () => {
    const gpus = {
      'GPU-00000000-0000-4000-8000-000000000000': {healthy: true, problems: []},
      'GPU-33333333-3333-4333-8333-333333333333': {
        healthy: false,
        problems: ['Xid 79 (GPU has fallen off the bus): "NVRM: Xid (PCI:0000:3b:00): 79, ..."']
      }
    }
    expect(JSON.parse(outputValues({gpuHealth: {enforced: true, gpus}})['gpu-health'])).toEqual(
      gpus
    )
  })

  it('writes the leased GPUs in three forms, docker-gpus quoted for --gpus, and freed-bytes', () => {
    const a = 'GPU-00000000-0000-4000-8000-000000000000'
    const b = 'GPU-33333333-3333-4333-8333-333333333333'
    const values = outputValues({
      gpuLeases: [
        {index: 0, uuid: a, name: 'NVIDIA H100', how: 'leased'},
        {index: 3, uuid: b, name: 'NVIDIA H100', how: 'taken over', from: 'job x'}
      ],
      disk: {
        dataRoot: '/var/lib/docker',
        minFree: 2e9,
        freeBefore: 1e9,
        freeAfter: 2.5e9,
        freedBytes: 1.5e9,
        removed: []
      }
    })
    expect(values['gpu-uuids']).toBe(`${a},${b}`)
    expect(values['gpu-indexes']).toBe('0,3')
    expect(values['docker-gpus']).toBe(`"device=${a},${b}"`)
    expect(values['freed-bytes']).toBe('1500000000')
  })

  it('renders images as JSON and digests as target@digest lines, leaving failures out of digests', () => {
    const rows: PushResult[] = [
      {
        source: 'a',
        target: 'localhost:5000/a:1',
        digest: D,
        size: 10,
        status: 'pushed',
        attempts: 2
      },
      {source: 'b', target: 'localhost:5000/b:1', digest: D, size: 10, status: 'unchanged'},
      {
        source: 'c',
        target: 'localhost:5000/c:1',
        digest: '',
        size: 0,
        status: 'failed',
        error: 'boom'
      }
    ]
    expect(JSON.parse(imagesJson(rows))).toEqual([
      {source: 'a', target: 'localhost:5000/a:1', digest: D, size: 10, status: 'pushed'},
      {source: 'b', target: 'localhost:5000/b:1', digest: D, size: 10, status: 'unchanged'},
      {
        source: 'c',
        target: 'localhost:5000/c:1',
        digest: '',
        size: 0,
        status: 'failed',
        error: 'boom'
      }
    ])
    expect(digestsText(rows)).toBe(`localhost:5000/a:1@${D}\nlocalhost:5000/b:1@${D}`)
  })
})
