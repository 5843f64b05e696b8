/** The push phase against a real local registry (built here, see harness.buildRegistryImage). */
import * as http from 'node:http'
import {existsSync, mkdtempSync, rmSync} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {
  buildBusyboxImage,
  buildRegistryImage,
  ensureRunnerUser,
  errorLine,
  expectSuccess,
  ran,
  requireE2EHost,
  runAction,
  sh,
  startAction,
  stopDocker,
  ensureEngineRunning
} from './harness.js'

const work = mkdtempSync(path.join(os.tmpdir(), 'dgs-e2e-push-'))
const base = {'docker-source': 'distro', 'gpu-runtime': 'none', 'registry-data': `${work}/data`}
const IMAGES = 'dgs-e2e/app1:1\ndgs-e2e/app2:1 => team/app2:v2\n# a comment\ndgs-e2e/app3:1'
const MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'

interface Row {
  source: string
  target: string
  digest: string
  size: number
  status: string
}

/** What the registry itself says: the digest it holds for a tag. */
function registryDigest(target: string, auth = ''): string {
  const m = /^([^/]+)\/(.+):([^:]+)$/.exec(target) as RegExpExecArray
  const headers = sh(
    `curl -sfI ${auth} -H 'Accept: ${MANIFEST}' http://${m[1]}/v2/${m[2]}/manifests/${m[3]}`
  )
  return /docker-content-digest: (\S+)/i.exec(headers)?.[1] ?? ''
}

beforeAll(() => {
  requireE2EHost()
  ensureRunnerUser()
  sh('rm -f /etc/docker/daemon.json')
  ensureEngineRunning()
  sh('docker rm -f docker-gpu-setup-registry >/dev/null 2>&1 || true')
  buildRegistryImage('registry:3')
  for (const n of [1, 2, 3]) buildBusyboxImage(`dgs-e2e/app${n}:1`, `push-app${n}-${Date.now()}`)
}, 300_000)

afterAll(() => {
  sh(
    'docker rm -f docker-gpu-setup-registry >/dev/null 2>&1 || true; rm -rf /etc/docker-gpu-setup',
    {allowFail: true}
  )
  stopDocker()
  rmSync(work, {recursive: true, force: true})
}, 120_000)

describe('pushing to the local registry', () => {
  it('pushes three images and two extra tags; the registry agrees with every digest', () => {
    const run = runAction({...base, images: IMAGES, tags: 'main, sha-1'})
    expectSuccess(run)
    const rows = JSON.parse(run.outputs.images) as Row[]
    expect(rows.map(r => r.target)).toEqual([
      'localhost:5000/dgs-e2e/app1:1',
      'localhost:5000/dgs-e2e/app1:main',
      'localhost:5000/dgs-e2e/app1:sha-1',
      'localhost:5000/team/app2:v2',
      'localhost:5000/team/app2:main',
      'localhost:5000/team/app2:sha-1',
      'localhost:5000/dgs-e2e/app3:1',
      'localhost:5000/dgs-e2e/app3:main',
      'localhost:5000/dgs-e2e/app3:sha-1'
    ])
    for (const r of rows) {
      expect(r.status).toBe('pushed')
      expect(r.digest).toMatch(/^sha256:[0-9a-f]{64}$/)
      expect(r.size).toBeGreaterThan(0)
      expect(registryDigest(r.target)).toBe(r.digest)
    }
    expect(sh('curl -sf http://localhost:5000/v2/team/app2/tags/list')).toContain('"v2"')
    expect(run.outputs.digests.split('\n')).toEqual(rows.map(r => `${r.target}@${r.digest}`))
    expect(run.summary).toContain('### Images')
    expect(run.summary).toContain('| dgs-e2e/app2:1 | localhost:5000/team/app2:v2 |')
  }, 180_000)

  it('a rerun pushes nothing and reports every image unchanged', () => {
    const run = runAction({...base, images: IMAGES, tags: 'main, sha-1'})
    expect(run.code).toBe(0)
    expect(run.commands.some(c => c.includes('push'))).toBe(false)
    const rows = JSON.parse(run.outputs.images) as Row[]
    expect(rows).toHaveLength(9)
    expect(rows.every(r => r.status === 'unchanged')).toBe(true)
    expect(run.summary).toContain('host already right: nothing changed')
  })

  it('a missing local image fails before any push, naming it and its line', () => {
    const run = runAction({...base, images: 'dgs-e2e/app1:1\ndgs-e2e/missing:9'})
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      'images: dgs-e2e/missing:9 (line 2) is not on this host; nothing was pushed. Build or pull it before this step.'
    )
    expect(ran(run, 'docker') && run.commands.some(c => c.includes('push'))).toBe(false)
  })
})

describe('a registry that fails in the middle of a run', () => {
  let proxy: http.Server | undefined
  afterAll(() => {
    proxy?.close()
  })

  it('retries, then names what did not land and reports what did', async () => {
    // A proxy on 127.0.0.1 in front of the registry that answers 503 to one repository's manifest
    // upload, after its layers went through: the same image fails on every attempt, whatever the
    // timing, and the failure comes at the end of a push (docker's own layer retries stay out).
    let refused = 0
    proxy = http.createServer((req, res) => {
      if (req.method === 'PUT' && req.url?.includes('/dgs-e2e/app3/manifests/')) {
        refused++
        res.writeHead(503).end('Service Unavailable')
        return
      }
      const up = http.request(
        {host: '127.0.0.1', port: 5000, path: req.url, method: req.method, headers: req.headers},
        r => {
          res.writeHead(r.statusCode ?? 502, r.headers)
          r.pipe(res)
        }
      )
      up.on('error', () => res.writeHead(502).end())
      req.pipe(up)
    })
    await new Promise<void>(resolve => proxy?.listen(5077, '127.0.0.1', resolve))
    const started = startAction({
      ...base,
      registry: '127.0.0.1:5077',
      'start-registry': 'false',
      images: 'dgs-e2e/app1:1\ndgs-e2e/app3:1',
      'push-concurrency': '1',
      'push-retries': '2'
    })
    const run = await started.done
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      '1 of 2 image(s) did not land: 127.0.0.1:5077/dgs-e2e/app3:1. In the registry: 127.0.0.1:5077/dgs-e2e/app1:1.'
    )
    expect(run.stdout).toContain('127.0.0.1:5077/dgs-e2e/app3:1: push failed')
    expect(run.stdout).toContain('retry 2 of 2')
    // The annotation (its title is escaped as the runner's command syntax requires).
    expect(run.stdout).toContain('::error title=push 127.0.0.1%3A5077/dgs-e2e/app3%3A1::')
    const rows = JSON.parse(run.outputs.images) as Row[]
    expect(rows.map(r => [r.target, r.status])).toEqual([
      ['127.0.0.1:5077/dgs-e2e/app1:1', expect.stringMatching(/^(pushed|unchanged)$/)],
      ['127.0.0.1:5077/dgs-e2e/app3:1', 'failed']
    ])
    expect(
      run.commands.filter(c => c.includes('push') && c.includes('127.0.0.1:5077/dgs-e2e/app3:1'))
    ).toHaveLength(3)
    expect(refused).toBe(3)
  }, 180_000)
})

describe('pushing with credentials', () => {
  const password = 'push-secret-9931'
  it('logs in with the password on stdin into a per-job DOCKER_CONFIG; the password appears nowhere', () => {
    const run = runAction({
      ...base,
      'registry-htpasswd': `ci:${password}`,
      username: 'ci',
      password,
      images: 'dgs-e2e/app1:1 => private/app1:1'
    })
    expect(run.code).toBe(0)
    const rows = JSON.parse(run.outputs.images) as Row[]
    expect(rows[0].status).toBe('pushed')
    expect(registryDigest('localhost:5000/private/app1:1', `-u ci:${password}`)).toBe(
      rows[0].digest
    )
    const shown = run.stdout.replace(/^::add-mask::.*$/gm, '')
    expect(`${shown}${run.stderr}${run.summary}${JSON.stringify(run.commands)}`).not.toContain(
      password
    )
    const config = run.exported.DOCKER_CONFIG
    expect(config).toMatch(/docker-gpu-setup-docker-config$/)
    expect(run.state['docker-config']).toBe(config)
    // Anonymous pushes are refused by that registry.
    expect(sh('curl -s -o /dev/null -w "%{http_code}" http://localhost:5000/v2/_catalog')).toBe(
      '401'
    )
  }, 180_000)

  it('the post step removes the DOCKER_CONFIG it made', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dgs-e2e-config-'))
    const post = runAction({}, {post: {isPost: 'true', 'docker-config': dir}})
    expect(post.code).toBe(0)
    expect(existsSync(dir)).toBe(false)
  })
})
