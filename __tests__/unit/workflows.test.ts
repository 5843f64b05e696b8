/**
 * The workflows and examples as a maintainer reviews them: no expression inside `run:` (event text
 * or a step's output would be pasted into the script: pass it through env), least privilege (no
 * permission granted at the top, only per job), pinned third-party actions, and a time limit on
 * every job of this repository's workflows; the release workflow's split between a read-only
 * verify job and a write job that runs no npm.
 */
import {readFileSync, readdirSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'

interface Step {
  uses?: string
  run?: string
}
interface Job {
  'runs-on'?: unknown
  'timeout-minutes'?: number
  permissions?: Record<string, string>
  needs?: string
  steps: Step[]
}
interface Workflow {
  permissions?: Record<string, string>
  concurrency?: {group: string; 'cancel-in-progress': boolean}
  jobs: Record<string, Job>
}

const WORKFLOWS = readdirSync('.github/workflows').map(f => `.github/workflows/${f}`)
const EXAMPLES = readdirSync('examples').map(f => `examples/${f}`)
const read = (f: string): Workflow => parse(readFileSync(f, 'utf8')) as Workflow

describe.each([...WORKFLOWS, ...EXAMPLES])('%s', file => {
  const workflow = read(file)
  const steps = Object.values(workflow.jobs).flatMap(j => j.steps)

  it('puts no ${{ }} expression inside run:', () => {
    expect(steps.filter(s => s.run?.includes('${{')).map(s => s.run)).toEqual([])
  })

  it('pins every third-party action by commit, with its version in a comment', () => {
    const text = readFileSync(file, 'utf8')
    const uses = [...text.matchAll(/uses:\s*(\S+)(.*)$/gm)]
      .filter(([, ref]) => !ref.startsWith('./') && !ref.startsWith('org/docker-gpu-setup'))
      .map(([, ref, rest]) => [ref, /^\s*# v\d+\.\d+\.\d+$/.test(rest)])
    for (const [ref, commented] of uses) {
      expect([ref, commented]).toEqual([expect.stringMatching(/@[0-9a-f]{40}$/), true])
    }
  })
})

describe.each(WORKFLOWS)('%s', file => {
  const workflow = read(file)

  it('grants nothing at the top and each job only what it needs, with a time limit', () => {
    expect(workflow.permissions).toEqual({})
    for (const job of Object.values(workflow.jobs)) {
      expect(job.permissions).toBeDefined()
      expect(job['timeout-minutes']).toBeGreaterThan(0)
    }
  })
})

describe('the release workflow', () => {
  const release = read('.github/workflows/release.yml')
  const {verify, publish} = release.jobs

  it('verifies read-only, then publishes in a job that runs no npm', () => {
    expect(verify.permissions).toEqual({contents: 'read'})
    expect(publish.needs).toBe('verify')
    expect(publish.permissions).toEqual({contents: 'write'})
    expect(publish.steps.filter(s => /\bnpm\b|\bnpx\b/.test(s.run ?? ''))).toEqual([])
    expect(verify.steps.map(s => s.run ?? '').join('\n')).toMatch(/git status --porcelain -- dist/)
  })

  it('runs one release at a time, never cancelling one under way', () => {
    expect(release.concurrency).toEqual({group: 'release', 'cancel-in-progress': false})
  })
})
