import {describe, expect, it} from '@jest/globals'
import {
  holdsSecret,
  DaemonConfigParseError,
  contradictions,
  diffConfigs,
  mergeFragments,
  parseDaemonConfig,
  sameConfig,
  serialiseDaemonConfig
} from '../../src/phases/daemon/daemon-config.js'
import type {JsonObject} from '../../src/docker/daemon-fragment.js'

const NVIDIA: JsonObject = {
  runtimes: {nvidia: {path: 'nvidia-container-runtime', args: []}},
  'default-runtime': 'nvidia'
}

// Real shapes: the file `nvidia-ctk runtime configure --runtime=docker` writes, a stock file with
// log options, one with the containerd snapshotter feature, and one with mirrors.
const SAMPLES: Record<string, string> = {
  'nvidia-ctk':
    '{\n    "runtimes": {\n        "nvidia": {\n            "args": [],\n            "path": "nvidia-container-runtime"\n        }\n    }\n}',
  'log options': '{"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}',
  snapshotter: '{"features": {"containerd-snapshotter": true, "buildkit": true}}',
  mirrors:
    '{"registry-mirrors": ["https://mirror.gcr.io"], "insecure-registries": ["10.0.0.5:5000"]}'
}

describe('holdsSecret', () => {
  it.each([
    ['{"proxies": {"http-proxy": "http://u:pw@proxy:3128"}}', true],
    ['{"proxies": {"https-proxy": "http://token@proxy:3128", "no-proxy": "x"}}', true],
    ['{"proxies": {"http-proxy": "http://proxy:3128", "no-proxy": "a@b"}}', false],
    ['{"registry-mirrors": ["https://u:pw@mirror"]}', false],
    ['not json', false]
  ])('%s: %j', (text, yes) => {
    expect(holdsSecret(text)).toBe(yes)
  })
})

describe('parseDaemonConfig', () => {
  it.each(Object.entries(SAMPLES))('parses %s', (_name, text) => {
    expect(typeof parseDaemonConfig(text)).toBe('object')
  })

  it('refuses a top level that is not an object', () => {
    expect(() => parseDaemonConfig('[1, 2]')).toThrow('the top level is not a JSON object (line 1)')
  })

  it('reads an empty file as an empty config', () => {
    expect(parseDaemonConfig('  \n')).toEqual({})
  })

  it.each([
    ['{\n  "a": 1,\n  "b": \n}', 4],
    ['{\n  "runtimes": {\n    "nvidia": {\n      "path:" "x"\n    }\n  }\n}', 4],
    ['{"a": 1}}', 1],
    ['{\n  "a": "x\ny"\n}', 2],
    ['{\n  "a": [1,\n  2', 3]
  ])('refuses %j, naming the line', (text, line) => {
    let error: unknown
    try {
      parseDaemonConfig(text)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(DaemonConfigParseError)
    expect((error as DaemonConfigParseError).line).toBe(line)
    expect((error as Error).message).toMatch(
      new RegExp(`^unexpected .* at column \\d+ \\(line ${line}\\)$`)
    )
  })
})

describe('mergeFragments', () => {
  it('keeps every key of the file and adds the runtime (nvidia-ctk file: nothing to change)', () => {
    const current = parseDaemonConfig(SAMPLES['nvidia-ctk'])
    const {merged, overwrites} = mergeFragments(current, [
      {source: 'nvidia', value: {runtimes: NVIDIA.runtimes}}
    ])
    expect(sameConfig(merged, current)).toBe(true)
    expect(overwrites).toEqual([])
  })

  it('merges objects key by key and arrays as a union, keeping unknown keys', () => {
    const current = parseDaemonConfig(
      '{"log-opts": {"max-size": "10m"}, "features": {"containerd-snapshotter": true}, "registry-mirrors": ["https://a"], "runtimes": {"custom": {"path": "runc"}}, "experimental-thing": 1}'
    )
    const {merged} = mergeFragments(current, [
      {source: 'nvidia', value: {...NVIDIA, features: {cdi: true}}},
      {
        source: 'daemon-config',
        value: {'log-opts': {'max-file': '3'}, 'registry-mirrors': ['https://a', 'https://b']}
      }
    ])
    expect(merged).toEqual({
      'log-opts': {'max-size': '10m', 'max-file': '3'},
      features: {'containerd-snapshotter': true, cdi: true},
      'registry-mirrors': ['https://a', 'https://b'],
      runtimes: {custom: {path: 'runc'}, nvidia: {path: 'nvidia-container-runtime', args: []}},
      'experimental-thing': 1,
      'default-runtime': 'nvidia'
    })
  })

  it('names each key the inputs overwrite, old → new', () => {
    const {overwrites} = mergeFragments(
      {'default-runtime': 'runc', 'log-opts': {'max-size': '1m'}},
      [
        {source: 'nvidia-default-runtime', value: {'default-runtime': 'nvidia'}},
        {source: 'daemon-config', value: {'log-opts': {'max-size': '50m'}}}
      ]
    )
    expect(overwrites).toEqual([
      {path: 'default-runtime', from: 'runc', to: 'nvidia', source: 'nvidia-default-runtime'},
      {path: 'log-opts.max-size', from: '1m', to: '50m', source: 'daemon-config'}
    ])
  })

  it('finds inputs that contradict each other', () => {
    expect(
      contradictions([
        {source: 'gpu-runtime', value: {runtimes: {nvidia: {path: 'nvidia-container-runtime'}}}},
        {source: 'daemon-config', value: {runtimes: {nvidia: {path: '/opt/other'}}}}
      ])
    ).toEqual([
      'runtimes.nvidia.path: gpu-runtime sets "nvidia-container-runtime" but daemon-config sets "/opt/other"'
    ])
    expect(
      contradictions([
        {source: 'a', value: {x: [1]}},
        {source: 'b', value: {x: [2]}}
      ])
    ).toEqual([])
  })
})

describe('serialise and diff', () => {
  it('writes stable two-space JSON, key order kept, with a final newline', () => {
    const text = serialiseDaemonConfig({b: 1, a: {d: [1], c: true}})
    expect(text).toBe(
      '{\n  "b": 1,\n  "a": {\n    "d": [\n      1\n    ],\n    "c": true\n  }\n}\n'
    )
    expect(serialiseDaemonConfig(parseDaemonConfig(text))).toBe(text)
  })

  it('compares meaning, not key order', () => {
    expect(sameConfig({a: 1, b: {c: 2, d: 3}}, {b: {d: 3, c: 2}, a: 1})).toBe(true)
    expect(sameConfig({a: [1, 2]}, {a: [2, 1]})).toBe(false)
  })

  it('lists changed leaves', () => {
    expect(
      diffConfigs(
        {'default-runtime': 'runc', 'log-level': 'info', runtimes: {custom: {path: 'runc'}}},
        {
          'default-runtime': 'nvidia',
          runtimes: {custom: {path: 'runc'}, nvidia: {path: 'nvidia-container-runtime', args: []}}
        }
      )
    ).toEqual([
      '~ default-runtime: "runc" → "nvidia"',
      '- log-level: "info"',
      '+ runtimes.nvidia: {"path":"nvidia-container-runtime","args":[]}'
    ])
  })
})
