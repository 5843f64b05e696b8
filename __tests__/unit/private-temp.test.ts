/** The run's scratch folders: never a fixed name in a folder another local user can write. */
import {describe, expect, it} from '@jest/globals'
import {mkdirSync, mkdtempSync, readdirSync, statSync, symlinkSync} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {privateTempDir} from '../../src/host.js'
import {noSourcesOptions} from '../../src/system/apt.js'

describe('privateTempDir', () => {
  it("is the runner's RUNNER_TEMP when it is set", async () => {
    expect(await privateTempDir({RUNNER_TEMP: '/home/runner/_work/_temp'})).toBe(
      '/home/runner/_work/_temp'
    )
  })

  it("is a new 0700 folder of this process's own without it, never the shared temp folder", async () => {
    const a = await privateTempDir({})
    const b = await privateTempDir({})
    expect(a).not.toBe(b)
    expect(path.dirname(a)).toBe(os.tmpdir())
    expect(statSync(a).mode & 0o777).toBe(0o700)
  })
})

describe('noSourcesOptions', () => {
  it('reads an empty list from a new folder, not from one planted at the old fixed name', async () => {
    const temp = mkdtempSync(path.join(os.tmpdir(), 'dgs-test-'))
    const planted = mkdtempSync(path.join(os.tmpdir(), 'dgs-planted-'))
    mkdirSync(path.join(planted, 'parts'))
    symlinkSync(planted, path.join(temp, 'docker-gpu-setup-no-sources'))
    const options = await noSourcesOptions(temp)
    const list = options[options.indexOf('-o') + 1].replace('Dir::Etc::SourceList=', '')
    expect(list.startsWith(planted)).toBe(false)
    expect(path.dirname(path.dirname(list))).toBe(temp)
    expect(readdirSync(planted)).toEqual(['parts'])
  })
})
