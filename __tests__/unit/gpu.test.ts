import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {checkImageFor, explainGpuFailure, parseNvidiaSmi} from '../../src/phases/daemon/gpu.js'

const sample = (name: string): string => readFileSync(`__fixtures__/nvidia-smi/${name}`, 'utf8')

describe('parseNvidiaSmi (samples from public issue threads, see __fixtures__/README.md)', () => {
  it.each([
    [
      '450.57-titan-xp.txt',
      {driverVersion: '450.57', cudaVersion: '11.0', gpus: [{index: 0, name: 'TITAN Xp'}]}
    ],
    [
      '610.43.02-b200.txt',
      {
        driverVersion: '610.43.02',
        cudaVersion: '13.3',
        gpus: [
          {index: 0, name: 'NVIDIA B200'},
          {index: 1, name: 'NVIDIA B200'}
        ]
      }
    ],
    [
      '331.62-gtx680.txt',
      {
        driverVersion: '331.62',
        cudaVersion: undefined,
        gpus: [0, 1, 2].map(index => ({index, name: 'GeForce GTX 680'}))
      }
    ],
    ['520.56.06-header.txt', {driverVersion: '520.56.06', cudaVersion: '11.8', gpus: []}]
  ])('%s', (file, expected) => {
    expect(parseNvidiaSmi(sample(file))).toEqual(expected)
  })

  it.each(['no-driver.txt', 'no-devices.txt'])('%s → no driver', file => {
    expect(parseNvidiaSmi(sample(file))).toBeUndefined()
  })
})

describe('checkImageFor', () => {
  it.each([
    ['13.3', 'nvidia/cuda:12.8.1-base-ubuntu22.04'],
    ['12.8', 'nvidia/cuda:12.8.1-base-ubuntu22.04'],
    ['12.7', 'nvidia/cuda:12.6.3-base-ubuntu22.04'],
    ['12.2', 'nvidia/cuda:12.2.2-base-ubuntu22.04'],
    ['12.1', 'nvidia/cuda:12.0.1-base-ubuntu22.04'],
    ['11.8', 'nvidia/cuda:11.8.0-base-ubuntu22.04'],
    ['11.0', undefined],
    [undefined, undefined]
  ])('CUDA %s → %s', (cuda, image) => {
    expect(checkImageFor(cuda)).toBe(image)
  })
})

describe('explainGpuFailure', () => {
  it.each([
    [
      'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
      'toolkit is missing'
    ],
    [
      'docker: Error response from daemon: unknown or invalid runtime name: nvidia.',
      "no 'nvidia' runtime"
    ],
    [
      'nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open shared object file',
      'snap'
    ],
    [
      'nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.8, please update your driver',
      'gpu-check-image'
    ]
  ])('%s', (output, fix) => {
    expect(explainGpuFailure(output)).toContain(fix)
  })

  it('says nothing about an unknown failure', () => {
    expect(explainGpuFailure('something else')).toBeUndefined()
  })
})
