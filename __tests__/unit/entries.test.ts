import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {ENTRIES, GPUS, PUSH, REGISTRY, SETUP, entryForScript} from '../../src/entries.js'
import {INPUT_DEFAULTS} from '../../src/inputs.js'
import {entryScript, renderSubAction} from '../../scripts/sub-actions.mjs'

const rootYml = readFileSync('action.yml', 'utf8')
const subActions = ENTRIES.filter(e => e !== SETUP)

interface ActionYml {
  inputs: Record<string, {description: string; default?: string}>
  outputs: Record<string, {description: string}>
  runs: Record<string, string>
}

describe('the sub-actions', () => {
  it.each(subActions.map(e => [e.file, e] as const))(
    '%s/action.yml and dist/%s.js are as scripts/sub-actions.mjs writes them',
    async (file, entry) => {
      // Stale: run `npm run package`.
      expect(readFileSync(`${file}/action.yml`, 'utf8')).toBe(await renderSubAction(rootYml, entry))
      expect(readFileSync(`dist/${file}.js`, 'utf8')).toBe(entryScript(entry))
    }
  )

  it.each(subActions.map(e => [e.file, e] as const))(
    '%s declares only its own inputs and outputs, with the root action’s meanings',
    (file, entry) => {
      const root = parse(rootYml) as ActionYml
      const sub = parse(readFileSync(`${file}/action.yml`, 'utf8')) as ActionYml
      expect(Object.keys(sub.inputs)).toEqual(entry.inputs)
      expect(Object.keys(sub.outputs)).toEqual(entry.outputs)
      for (const [name, spec] of Object.entries(sub.inputs)) {
        expect(spec.description).toBe(root.inputs[name].description)
      }
      expect(sub.runs).toEqual({
        using: 'node24',
        main: `../dist/${file}.js`,
        post: `../dist/${file}.js`
      })
    }
  )

  it('gives each entry only the phases its contract allows', () => {
    expect(PUSH.phases).toEqual(['push'])
    expect(REGISTRY.phases).toEqual(['daemon', 'registry'])
    // The registry's daemon.json keys only: GPUs are left alone, nothing is installed.
    expect(REGISTRY.defaults).toMatchObject({'gpu-runtime': 'none', 'gpu-check': 'false'})
    expect(GPUS.phases).toEqual(['health', 'gpus'])
    for (const e of ENTRIES) {
      for (const name of Object.keys(e.defaults)) expect(name in INPUT_DEFAULTS).toBe(true)
    }
  })

  it.each([
    ['/a/_actions/org/docker-gpu-setup/v1/dist/index.js', 'index'],
    ['/a/_actions/org/docker-gpu-setup/v1/push/../dist/push.js', 'push'],
    ['dist/registry.js', 'registry'],
    ['/x/dist/gpus.js', 'gpus'],
    [undefined, 'index'],
    ['/usr/bin/something-else.js', 'index']
  ])('%s runs the %s entry', (script, file) => {
    expect(entryForScript(script).file).toBe(file)
  })
})
