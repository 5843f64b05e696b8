import {mkdtempSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import * as path from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from '@jest/globals'
import {forgetUse, jobWorker, otherUsers, recordUse} from '../../src/phases/registry/users.js'
import {processIdentity} from '../../src/system/process.js'
import {FakeRunner} from './fake-runner.js'

// The records of the real lock folder, in a folder of the test's own (as root: plain fs).
let dir: string
const root = new FakeRunner([], true)
const env = {GITHUB_JOB: 'build', GITHUB_REPOSITORY: 'org/repo', GITHUB_RUN_ID: '7'}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'dgs-users-'))
})
afterEach(() => rmSync(dir, {recursive: true, force: true}))

describe('registry users', () => {
  it('records each container this job uses once, named after its worker (pid and start time)', async () => {
    const me = jobWorker()
    expect(me).toBeDefined()
    await recordUse(root, ['reg', 'cache-a'], dir, dir, env)
    await recordUse(root, ['reg'], dir, dir, env)
    expect(readdirSync(dir).sort()).toEqual([
      `registry-user.cache-a.${me?.pid}.${me?.start}`,
      `registry-user.reg.${me?.pid}.${me?.start}`
    ])
    // Another job sees this one as a user; this job itself does not count.
    expect(await otherUsers(root, 'reg', undefined, dir)).toEqual([
      `job build (org/repo run 7), worker pid ${me?.pid}`
    ])
    expect(await otherUsers(root, 'reg', me, dir)).toEqual([])
    expect(await otherUsers(root, 'other', undefined, dir)).toEqual([])
    await forgetUse(root, me, dir)
    expect(readdirSync(dir)).toEqual([])
  })

  it('drops the records of a job whose worker has ended (a pid no process has, or a reused one)', async () => {
    writeFileSync(path.join(dir, 'registry-user.reg.4194303.5'), 'job gone\n')
    const later = Number(processIdentity(1)?.start) + 1
    writeFileSync(path.join(dir, `registry-user.reg.1.${later}`), 'job whose pid is now init\n')
    expect(await otherUsers(root, 'reg', undefined, dir)).toEqual([])
    expect(readdirSync(dir)).toEqual([])
  })
})
