/** gpu-isolation: the toolkit's two keys, strict and its undoing (pure), and nvidia-ctk's use. */
import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {
  ctkCanSet,
  ctkSetArgv,
  ctkVersion,
  keyValues,
  parseRecord,
  planIsolation,
  withKey
} from '../../src/phases/isolation/toolkit-config.js'
import {writeKeys} from '../../src/phases/isolation/phase.js'
import {FakeRunner} from './fake-runner.js'

const ENVVAR = 'accept-nvidia-visible-devices-envvar-when-unprivileged'
const MOUNTS = 'accept-nvidia-visible-devices-as-volume-mounts'

// The toolkit's default config.toml, as `nvidia-ctk config default` writes it (cited in the file).
const SHIPPED = readFileSync('__fixtures__/nvidia-container-toolkit/config.toml', 'utf8')

describe('config.toml keys', () => {
  it('reads only active top-level lines: a comment or a table key does not count', () => {
    expect(keyValues(SHIPPED)).toEqual({[ENVVAR]: null, [MOUNTS]: null})
    const inTable = `${SHIPPED}\n[x]\n${ENVVAR} = false\n`
    expect(keyValues(inTable)[ENVVAR]).toBeNull()
    expect(keyValues(`${ENVVAR} = false # strict\n${SHIPPED}`)[ENVVAR]).toBe(false)
  })

  it('sets a key above the first table and takes it out again, every other line kept', () => {
    const set = withKey(withKey(SHIPPED, ENVVAR, false), MOUNTS, true)
    expect(keyValues(set)).toEqual({[ENVVAR]: false, [MOUNTS]: true})
    expect(set).toContain(
      `#swarm-resource = "DOCKER_RESOURCE_GPU"\n${ENVVAR} = false\n${MOUNTS} = true\n\n[nvidia-container-cli]`
    )
    expect(withKey(set, ENVVAR, true)).toContain(`${ENVVAR} = true\n`)
    expect(withKey(withKey(set, ENVVAR, null), MOUNTS, null)).toBe(SHIPPED)
  })
})

describe('planIsolation', () => {
  it('strict sets what is not strict yet and records what it held; a rerun changes nothing', () => {
    const first = planIsolation('strict', {text: SHIPPED})
    expect(first.set).toEqual({[ENVVAR]: false, [MOUNTS]: true})
    expect(first.record).toEqual({[ENVVAR]: null, [MOUNTS]: null})
    let text = SHIPPED
    for (const [k, v] of Object.entries(first.set)) text = withKey(text, k as typeof ENVVAR, v)
    expect(planIsolation('strict', {text, record: first.record ?? undefined})).toEqual({
      set: {},
      kept: []
    })
  })

  it("keeps an administrator's value in the record, and an earlier record over a later value", () => {
    const text = `${MOUNTS} = true\n${ENVVAR} = true\n${SHIPPED}`
    const plan = planIsolation('strict', {text})
    expect(plan.set).toEqual({[ENVVAR]: false})
    expect(plan.record).toEqual({[ENVVAR]: true})
    const again = planIsolation('strict', {
      text: `${ENVVAR} = true\n${MOUNTS} = false\n`,
      record: {[ENVVAR]: null}
    })
    expect(again.record).toEqual({[ENVVAR]: null, [MOUNTS]: false})
  })

  it('off puts back only what the record names and the file still shows as strict left it', () => {
    const strict = `${ENVVAR} = false\n${MOUNTS} = true\n[t]\n`
    expect(planIsolation('off', {text: strict, record: {[ENVVAR]: null, [MOUNTS]: false}})).toEqual(
      {
        set: {[ENVVAR]: null, [MOUNTS]: false},
        record: null,
        kept: []
      }
    )
    const changed = `${ENVVAR} = true\n${MOUNTS} = true\n`
    expect(planIsolation('off', {text: changed, record: {[ENVVAR]: null, [MOUNTS]: null}})).toEqual(
      {
        set: {[MOUNTS]: null},
        record: null,
        kept: [`${ENVVAR} = true: changed since strict set it`]
      }
    )
  })

  it('keep changes nothing, with or without a record of strict', () => {
    const strict = `${ENVVAR} = false\n${MOUNTS} = true\n`
    expect(planIsolation('keep', {record: {[ENVVAR]: null, [MOUNTS]: null}})).toEqual({
      set: {},
      kept: []
    })
    expect(planIsolation('keep', {text: strict})).toEqual({set: {}, kept: []})
    expect(planIsolation('keep', {})).toEqual({set: {}, kept: []})
  })

  it('off without a record changes nothing, whatever the file says', () => {
    expect(planIsolation('off', {text: `${ENVVAR} = false\n`})).toEqual({set: {}, kept: []})
    expect(planIsolation('off', {})).toEqual({set: {}, kept: []})
  })

  it('reads a record, and takes a damaged one for none', () => {
    expect(parseRecord(`{"${ENVVAR}": null, "${MOUNTS}": false, "x": 1}`)).toEqual({
      [ENVVAR]: null,
      [MOUNTS]: false
    })
    expect(parseRecord('{')).toBeUndefined()
    expect(parseRecord(undefined)).toBeUndefined()
  })
})

describe('nvidia-ctk', () => {
  it('sets keys in place from 1.14 on (cmd/nvidia-ctk/config), as argv', () => {
    expect(
      ctkVersion(
        'NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80a9b9d0db00d9b1d73c0128c8962c55f4d\n'
      )
    ).toEqual([1, 17])
    expect(ctkCanSet([1, 17])).toBe(true)
    expect(ctkCanSet([1, 13])).toBe(false)
    expect(ctkCanSet(undefined)).toBe(false)
    expect(ctkSetArgv('/etc/nvidia-container-runtime/config.toml', {[ENVVAR]: false})).toEqual([
      '/usr/bin/nvidia-ctk',
      'config',
      '--config-file=/etc/nvidia-container-runtime/config.toml',
      '--in-place',
      `--set=${ENVVAR}=false`
    ])
  })
})

describe('writeKeys', () => {
  it('sets strict through nvidia-ctk 1.14+ as root, in one command, without editing the file', async () => {
    const runner = new FakeRunner([
      [
        ['/usr/bin/nvidia-ctk', '--version'],
        {stdout: 'NVIDIA Container Toolkit CLI version 1.17.8\n'}
      ]
    ])
    const ctx = {runner, host: {tempDir: '/nonexistent'}} as unknown as Parameters<
      typeof writeKeys
    >[0]
    await writeKeys(ctx, {[ENVVAR]: false, [MOUNTS]: true})
    expect(runner.calls.map(c => [c.argv, c.options.root === true])).toEqual([
      [['/usr/bin/nvidia-ctk', '--version'], false],
      [
        ctkSetArgv('/etc/nvidia-container-runtime/config.toml', {[ENVVAR]: false, [MOUNTS]: true}),
        true
      ]
    ])
  })
})
