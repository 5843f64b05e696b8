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

const action = parse(readFileSync('action.yml', 'utf8')) as {
  inputs: Record<string, unknown>
  outputs: Record<string, unknown>
}
const examples = readdirSync('examples').filter(f => f.endsWith('.yml'))
const isThisAction = (s: Step): boolean => /(^|\/)docker-gpu-setup@/.test(s.uses ?? '')

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
      for (const input of Object.keys(step.with ?? {})) {
        expect([file, input, input in action.inputs]).toEqual([file, input, true])
      }
    }
    const ids = new Set(ours.map(s => s.id).filter(Boolean))
    for (const [, id, output] of text.matchAll(/steps\.([\w-]+)\.outputs\.([\w-]+)/g)) {
      expect([file, id, ids.has(id)]).toEqual([file, id, true])
      expect([file, output, output in action.outputs]).toEqual([file, output, true])
    }
  })
})
