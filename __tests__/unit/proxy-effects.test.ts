import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from '@jest/globals'
import type {HostInfo} from '../../src/host.js'
import type {Outputs} from '../../src/outputs.js'
import type {PhaseContext} from '../../src/phases/pipeline.js'
import {applyProxies, verifyProxies} from '../../src/phases/proxy/apply.js'
import {detectProxies} from '../../src/phases/proxy/detect.js'
import type {ProxySettings} from '../../src/phases/proxy/inputs.js'
import {planProxies} from '../../src/phases/proxy/plan.js'
import {parseOsRelease} from '../../src/system/os-release.js'
import {FakeRunner} from './fake-runner.js'
import {settingsWith} from './inputs-helper.js'

let home: string
let saved: string | undefined

beforeEach(() => {
  home = mkdtempSync(path.join(os.tmpdir(), 'dgs-proxy-'))
  saved = process.env.HOME
  process.env.HOME = home
})
afterEach(() => {
  process.env.HOME = saved
  rmSync(home, {recursive: true, force: true})
})

function ctx(inputs: ProxySettings, runner = new FakeRunner()): PhaseContext<ProxySettings> {
  const host: HostInfo = {
    os: parseOsRelease('ID=debian\n'),
    isRoot: runner.isRoot,
    user: os.userInfo().username,
    systemd: false,
    tempDir: home,
    identity: {names: ['gpu-01'], addresses: []}
  }
  const outputs: Outputs = {}
  return {
    inputs,
    host,
    runner,
    outputs,
    warn: () => undefined,
    remember: () => undefined,
    show: () => undefined
  }
}

const proxies = settingsWith({'https-proxy': 'http://proxy.corp:3128'}).proxy

describe('the proxy phase’s effects', () => {
  it('merge the proxies into the user’s own config and the job’s DOCKER_CONFIG, keeping auths', async () => {
    const job = path.join(home, 'job-config')
    mkdirSync(job)
    writeFileSync(
      path.join(job, 'config.json'),
      '{"auths": {"localhost:5000": {"auth": "eA=="}}}',
      {
        mode: 0o640
      }
    )
    const c = ctx(proxies)
    const facts = await detectProxies(c, {DOCKER_CONFIG: job, HOME: home})
    expect(facts.files.map(f => f.path)).toEqual([
      path.join(home, '.docker', 'config.json'),
      path.join(job, 'config.json')
    ])
    const plan = planProxies(facts, proxies)
    expect(plan.steps).toHaveLength(2)
    await applyProxies(plan, c)
    expect(await verifyProxies(plan, c)).toContain('proxies.default set in')
    const own = JSON.parse(
      readFileSync(path.join(home, '.docker', 'config.json'), 'utf8')
    ) as object
    expect(own).toEqual({
      proxies: {
        default: {
          httpsProxy: 'http://proxy.corp:3128',
          noProxy: 'localhost,127.0.0.0/8,::1,gpu-01,10.1.2.3'
        }
      }
    })
    expect(statSync(path.join(home, '.docker')).mode & 0o777).toBe(0o700)
    expect(statSync(path.join(home, '.docker', 'config.json')).mode & 0o777).toBe(0o600)
    const jobConfig = JSON.parse(readFileSync(path.join(job, 'config.json'), 'utf8')) as {
      auths: object
    }
    expect(jobConfig.auths).toEqual({'localhost:5000': {auth: 'eA=='}})
    expect(statSync(path.join(job, 'config.json')).mode & 0o777).toBe(0o640)
    // A rerun finds both right and plans nothing.
    const again = planProxies(await detectProxies(c, {DOCKER_CONFIG: job, HOME: home}), proxies)
    expect(again.steps).toEqual([])
  })

  it('read nothing when no proxy is set, and name the runner’s variables without credentials', async () => {
    const runner = new FakeRunner()
    const facts = await detectProxies(ctx({proxies: undefined}, runner), {
      https_proxy: 'http://u:pw@proxy:1'
    })
    expect(facts).toEqual({files: [], runnerEnvironment: {https_proxy: 'http://proxy:1'}})
    expect(runner.calls).toEqual([])
  })
})
