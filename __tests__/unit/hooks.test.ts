/** The runner's job hooks: the .env lines, the scripts, and the install/remove plan (pure). */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import * as path from 'node:path'
import {describe, expect, it} from '@jest/globals'
import {LEASE_RUNTIME_FILES} from '../../src/docker/lease-runtime.js'
import {gpusText, parseGpuInputs} from '../../src/phases/gpus/inputs.js'
import {readHookConfig} from '../../src/phases/hooks/detect.js'
import {parseHookInputs} from '../../src/phases/hooks/inputs.js'
import {
  HOOK_DIR,
  envWithHooks,
  envWithoutHooks,
  fileList,
  hookFiles,
  hookFilesOf,
  hookScript,
  leaseRuntimeFiles,
  planHooks,
  type HookFacts
} from '../../src/phases/hooks/plan.js'

const FOLDER = '/home/runner/actions-runner'
const HOOK_FILES = hookFilesOf(FOLDER)
const ENV = 'LANG=C.UTF-8\nHTTP_PROXY=http://proxy:3128\n'
const HOOKED = `LANG=C.UTF-8\nHTTP_PROXY=http://proxy:3128\nACTIONS_RUNNER_HOOK_JOB_STARTED=${HOOK_FILES.started}\nACTIONS_RUNNER_HOOK_JOB_COMPLETED=${HOOK_FILES.completed}\n`
const config = {gpus: '1', gpuWait: 900, teardown: true, gpuHealth: 'fail' as const}
const facts = (over: Partial<HookFacts> = {}): HookFacts => ({
  folder: FOLDER,
  env: ENV,
  installed: {},
  node: '/home/runner/actions-runner/externals/node24/bin/node',
  bundle: '// bundle\n',
  ...over
})
const install = {runnerHooks: 'install' as const, config}
/** Everything an install writes for the runner in FOLDER, the gpu-lease runtime included. */
const installedAll = (f: HookFacts): Record<string, string> => ({
  ...hookFiles(f, HOOK_FILES, config),
  ...leaseRuntimeFiles(f)
})

describe('the runner .env', () => {
  it("gains the two hook lines, every other line kept, and loses only this action's", () => {
    expect(envWithHooks(ENV, HOOK_FILES)).toBe(HOOKED)
    expect(envWithHooks(HOOKED, HOOK_FILES)).toBe(HOOKED)
    expect(envWithoutHooks(HOOKED, HOOK_FILES)).toBe(ENV)
    const own = 'ACTIONS_RUNNER_HOOK_JOB_STARTED=/opt/admin/started.sh\n'
    expect(envWithoutHooks(own, HOOK_FILES)).toBe(own)
  })

  it("runs the installed bundle with the runner's node, every path quoted", () => {
    expect(hookScript('started', "/opt/it's/node", HOOK_FILES.bundle)).toBe(
      `#!/bin/bash\n# docker-gpu-setup (runner-hooks: install): the runner's job-started hook.\nexec '/opt/it'\\''s/node' '${HOOK_FILES.bundle}' job-started\n`
    )
  })
})

describe('planHooks', () => {
  it('installs the files and the .env lines, then plans nothing', () => {
    const plan = planHooks(facts(), install)
    expect(plan.steps.map(s => s.description)).toEqual([
      `copy /home/runner/actions-runner/externals/node24/bin/node to ${LEASE_RUNTIME_FILES.node}`,
      `write ${HOOK_FILES.bundle}`,
      `write ${HOOK_FILES.packageJson}`,
      `write ${HOOK_FILES.config}`,
      `write ${HOOK_FILES.started}`,
      `write ${HOOK_FILES.completed}`,
      `write ${LEASE_RUNTIME_FILES.bundle}`,
      `write ${LEASE_RUNTIME_FILES.packageJson}`,
      `write ${LEASE_RUNTIME_FILES.script}`,
      'set ACTIONS_RUNNER_HOOK_JOB_STARTED and ACTIONS_RUNNER_HOOK_JOB_COMPLETED in /home/runner/actions-runner/.env'
    ])
    expect(plan.env).toBe(HOOKED)
    expect(plan.copyNode).toBe(true)
    const done = facts({env: HOOKED, installed: installedAll(facts()), runtimeNode: true})
    expect(planHooks(done, install).steps).toEqual([])
  })

  it("never replaces an administrator's own hook", () => {
    expect(() =>
      planHooks(
        facts({env: `${ENV}ACTIONS_RUNNER_HOOK_JOB_COMPLETED=/opt/admin/done.sh\n`}),
        install
      )
    ).toThrow(
      'runner-hooks: install, but /home/runner/actions-runner/.env already sets ACTIONS_RUNNER_HOOK_JOB_COMPLETED=/opt/admin/done.sh: the runner runs one hook per event.'
    )
  })

  it('removes what it installed, and nothing when nothing is there', () => {
    const done = facts({env: HOOKED, installed: hookFiles(facts(), HOOK_FILES, config)})
    const plan = planHooks(done, {runnerHooks: 'remove', config})
    expect(plan.env).toBe(ENV)
    expect(plan.remove.sort()).toEqual(fileList(HOOK_FILES).sort())
    expect(planHooks(facts(), {runnerHooks: 'remove', config}).steps).toEqual([])
  })

  it("keeps each runner's hooks in a folder of its own: one runner's install or remove leaves the other's", () => {
    // Expected: `printf '%s' PATH | sha256sum`, first 16 hex digits.
    expect(HOOK_FILES.dir).toBe(`${HOOK_DIR}/runner-d94681bd14d35ee1`)
    expect(hookFilesOf('/home/runner/Actions-Runner')).toEqual(HOOK_FILES)
    const other = hookFilesOf('/home/runner/actions-runner-2')
    expect(other.dir).toBe(`${HOOK_DIR}/runner-82ce0a34ce51459a`)
    expect(fileList(other).filter(f => fileList(HOOK_FILES).includes(f))).toEqual([])
    // Both installed; the other runner removes its hooks, then installs with other settings.
    const both = {
      ...installedAll(facts()),
      ...hookFiles(facts({folder: '/home/runner/actions-runner-2'}), other, config)
    }
    const second = facts({
      folder: '/home/runner/actions-runner-2',
      installed: both,
      runtimeNode: true
    })
    const removed = planHooks(second, {runnerHooks: 'remove', config})
    expect(removed.remove.sort()).toEqual(fileList(other).sort())
    const reinstalled = planHooks(second, {...install, config: {...config, gpus: '2'}})
    expect(Object.keys(reinstalled.write)).toEqual([other.config])
  })

  it('reads the settings beside the bundle that runs', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hooks-'))
    try {
      writeFileSync(path.join(dir, 'hooks.json'), JSON.stringify({...config, gpus: '2'}))
      expect((await readHookConfig(path.join(dir, 'index.js'))).gpus).toBe('2')
      expect((await readHookConfig(path.join(dir, 'none', 'index.js'))).gpus).toBe('')
    } finally {
      rmSync(dir, {recursive: true})
    }
  })

  it('needs the runner folder, and does nothing with none', () => {
    expect(() => planHooks(facts({folder: undefined}), install)).toThrow(
      "runner-hooks: install, but the runner's folder (with its .runner file) was not found"
    )
    expect(planHooks(facts({folder: undefined}), {runnerHooks: 'none', config}).steps).toEqual([])
    expect(() => parseHookInputs({'runner-hooks': 'yes'})).toThrow(
      'Input \'runner-hooks\' has an invalid value "yes": use one of install, remove, none'
    )
  })

  it('stores gpus as the input would give it, read back the same', () => {
    for (const text of ['', 'all', '2', '1,', 'GPU-5a4b3c2d-1e0f-4a1b-8c2d-3e4f5a6b7c8d,0,']) {
      const parsed = parseGpuInputs({gpus: text, 'gpu-wait': '1'}).gpus
      expect(parseGpuInputs({gpus: gpusText(parsed), 'gpu-wait': '1'}).gpus).toEqual(parsed)
    }
  })
})
