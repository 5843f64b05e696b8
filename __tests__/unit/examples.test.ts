import {readFileSync, readdirSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'

interface Step {
  id?: string
  uses?: string
  with?: Record<string, unknown>
}
interface Workflow {
  jobs: Record<string, {steps: Step[]}>
}

interface ActionYml {
  inputs: Record<string, unknown>
  outputs: Record<string, unknown>
}
const examples = readdirSync('examples').filter(f => f.endsWith('.yml'))
const USES = /(?:^|\/)docker-gpu-setup(?:\/(push|registry|gpus))?@/
const isThisAction = (s: Step): boolean => USES.test(s.uses ?? '')
/** The action.yml a step of this action uses: the root's or a sub-action's. */
const actionOf = (s: Step): ActionYml =>
  parse(readFileSync(`${USES.exec(s.uses ?? '')?.[1] ?? '.'}/action.yml`, 'utf8')) as ActionYml

describe('examples/', () => {
  it('has the workflows the README points to', () => {
    expect(examples.sort()).toEqual([
      'air-gapped.yml',
      'behind-a-proxy.yml',
      'build-and-push.yml',
      'gpu-runner.yml',
      'shared-gpu-host.yml'
    ])
  })

  it.each(examples)('%s uses only inputs and outputs action.yml declares', file => {
    const text = readFileSync(`examples/${file}`, 'utf8')
    const workflow = parse(text) as Workflow
    const steps = Object.values(workflow.jobs).flatMap(j => j.steps)
    const ours = steps.filter(isThisAction)
    expect(ours.length).toBeGreaterThan(0)
    for (const step of ours) {
      const action = actionOf(step)
      for (const input of Object.keys(step.with ?? {})) {
        expect([file, step.uses, input, input in action.inputs]).toEqual([
          file,
          step.uses,
          input,
          true
        ])
      }
    }
    const byId = new Map(ours.filter(s => s.id).map(s => [s.id, actionOf(s)]))
    for (const [, id, output] of text.matchAll(/steps\.([\w-]+)\.outputs\.([\w-]+)/g)) {
      const action = byId.get(id)
      expect([file, id, action !== undefined]).toEqual([file, id, true])
      expect([file, output, output in (action?.outputs ?? {})]).toEqual([file, output, true])
    }
  })
})
