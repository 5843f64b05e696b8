/**
 * The local registry on this real host. The registry image is built here from Debian's
 * docker-registry (distribution 2.8, see harness.buildRegistryImage) and tagged registry:3, the
 * action's default, so nothing is pulled; it reads the same REGISTRY_* variables as registry:3.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdtempSync, readdirSync, rmSync} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {
  RUNNER_USER,
  buildBusyboxImage,
  buildRegistryImage,
  ensureRunnerUser,
  errorLine,
  ran,
  requireE2EHost,
  runAction,
  sh,
  stopDocker,
  ensureEngineRunning
} from './harness.js'

const NAME = 'docker-gpu-setup-registry'
const MIRROR = 'docker-gpu-setup-mirror'
const work = mkdtempSync(path.join(os.tmpdir(), 'dgs-e2e-registry-'))
const data = `${work}/data`
const docker = `DOCKER_CONFIG=${work}/docker-config docker`
const base = {'docker-source': 'distro', 'gpu-runtime': 'none', 'registry-data': data}
let blocker: ChildProcess | undefined

function container(name = NAME): {id: string; startedAt: string; running: boolean} | undefined {
  const out = sh(
    `docker inspect --format '{{.Id}} {{.State.StartedAt}} {{.State.Running}}' ${name} 2>/dev/null || true`
  ).trim()
  if (!out) return undefined
  const [id, startedAt, running] = out.split(' ')
  return {id, startedAt, running: running === 'true'}
}

function removeContainers(): void {
  sh(`docker rm -f ${NAME} ${NAME}-previous ${MIRROR} dgs-e2e-upstream >/dev/null 2>&1 || true`)
}

beforeAll(() => {
  requireE2EHost()
  ensureRunnerUser()
  sh('rm -f /etc/docker/daemon.json')
  ensureEngineRunning()
  removeContainers()
  buildRegistryImage('registry:3')
  for (const n of [1, 2, 3]) buildBusyboxImage(`dgs-e2e/app${n}:1`, `app${n}`)
}, 300_000)

afterAll(() => {
  blocker?.kill()
  removeContainers()
  sh(`rm -rf /etc/docker/certs.d/localhost:5443 /etc/docker-gpu-setup /etc/docker/daemon.json`, {
    allowFail: true
  })
  stopDocker()
  rmSync(work, {recursive: true, force: true})
}, 120_000)

describe('a plain local registry', () => {
  it('starts, takes a push and gives the image back', () => {
    const run = runAction(base)
    expect(run.code).toBe(0)
    expect(run.outputs['registry-started']).toBe('true')
    expect(run.outputs.registry).toBe('localhost:5000')
    expect(sh(`docker inspect --format '{{.HostConfig.RestartPolicy.Name}}' ${NAME}`).trim()).toBe(
      'always'
    )
    sh(
      `docker tag dgs-e2e/app1:1 localhost:5000/app1:1 && ${docker} push localhost:5000/app1:1 >/dev/null`
    )
    sh('docker rmi localhost:5000/app1:1 >/dev/null')
    sh(`${docker} pull localhost:5000/app1:1 >/dev/null`)
    expect(sh('docker run --rm localhost:5000/app1:1').trim()).toBe('app1')
    expect(readdirSync(`${data}/docker/registry/v2/repositories`)).toContain('app1')
  }, 120_000)

  it.each([
    ['root', undefined],
    ['the runner user', RUNNER_USER]
  ])('a rerun (as %s) leaves the same container running, not restarted', (_who, user) => {
    const before = container()
    const run = runAction(base, {user})
    expect(run.code).toBe(0)
    expect(container()).toEqual(before)
    expect(run.outputs['registry-started']).toBe('false')
  })

  it('data survives a container restart, a daemon restart and a recreate', () => {
    sh(`docker restart ${NAME} >/dev/null`)
    stopDocker()
    const afterDaemon = runAction(base)
    expect(afterDaemon.code).toBe(0)
    expect(container()?.running).toBe(true)
    const before = container()
    // A spec change (a new bind address) recreates the container on the same data.
    const run = runAction({...base, 'registry-bind': '127.0.0.2'})
    expect(run.code).toBe(0)
    expect(run.outputs['registry-started']).toBe('true')
    expect(container()?.id).not.toBe(before?.id)
    expect(container(`${NAME}-previous`)).toBeUndefined()
    expect(sh('curl -sf http://127.0.0.2:5000/v2/app1/tags/list')).toContain('"1"')
    expect(runAction(base).code).toBe(0)
    expect(sh('curl -sf http://127.0.0.1:5000/v2/_catalog')).toContain('app1')
  }, 180_000)

  it('a port taken by another process fails naming it, and changes nothing', () => {
    blocker = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '5055'], {
      stdio: 'ignore'
    })
    sh(
      'for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:5055/ && exit 0; sleep 0.1; done; exit 1'
    )
    const before = container()
    const run = runAction({...base, registry: 'localhost:5055', 'registry-data': `${work}/other`})
    blocker.kill()
    expect(run.code).toBe(1)
    expect(errorLine(run)).toMatch(
      /^Port 5055 is taken by process "python3",pid=\d+,fd=\d+: the registry cannot publish on it\. Stop that, or choose another port \(registry: host:PORT\)\.$/
    )
    expect(container()).toEqual(before)
    expect(existsSync(`${work}/other`)).toBe(false)
  })

  it('a container of that name the action did not make is refused and left alone', () => {
    sh(
      `docker rm -f ${NAME} >/dev/null && docker run -d --name ${NAME} dgs-e2e/app1:1 /bin/busybox sleep 600 >/dev/null`
    )
    const before = container()
    const run = runAction(base)
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      `A container named ${NAME} exists that docker-gpu-setup did not create; it was left alone. Remove or rename it (docker rm -f ${NAME}) or run your own registry with start-registry: false.`
    )
    expect(container()).toEqual(before)
    sh(`docker rm -f ${NAME} >/dev/null`)
  })
})

describe('a registry with basic auth', () => {
  const password = 'n0t-in-any-log-4711'
  it('refuses anonymous pushes; a login then pushes; the password appears nowhere', () => {
    const run = runAction({...base, 'registry-htpasswd': `ci:${password}`})
    expect(run.code).toBe(0)
    // The runner consumes ::add-mask:: (it never shows it) and masks the value everywhere after.
    expect(run.stdout).toContain(`::add-mask::${password}`)
    const shown = run.stdout.replace(/^::add-mask::.*$/gm, '')
    expect(`${shown}${run.stderr}${run.summary}`).not.toContain(password)
    expect(run.commands.flat().join(' ')).not.toContain(password)
    sh('docker tag dgs-e2e/app2:1 localhost:5000/app2:1')
    const anon = sh(`${docker} push localhost:5000/app2:1 2>&1`, {allowFail: true})
    expect(anon).toMatch(/no basic auth credentials|unauthorized/)
    sh(`${docker} login localhost:5000 -u ci --password-stdin >/dev/null 2>&1`, {input: password})
    sh(`${docker} push localhost:5000/app2:1 >/dev/null`)
    expect(sh(`curl -sf -u ci:${password} http://127.0.0.1:5000/v2/_catalog`)).toContain('app2')
    // The rerun keeps the file (the password still matches) and the container.
    const before = container()
    const again = runAction({...base, 'registry-htpasswd': `ci:${password}`})
    expect(again.code).toBe(0)
    expect(container()).toEqual(before)
  }, 120_000)
})

describe('a registry over TLS', () => {
  it('serves HTTPS with a self-signed certificate that this host’s daemon trusts', () => {
    sh(
      `openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 ` +
        `-keyout ${work}/tls.key -out ${work}/tls.crt 2>/dev/null`
    )
    const run = runAction({
      ...base,
      registry: 'localhost:5443',
      'registry-data': `${work}/tls-data`,
      'registry-tls-cert': `${work}/tls.crt`,
      'registry-tls-key': `${work}/tls.key`
    })
    expect(run.code).toBe(0)
    expect(existsSync('/etc/docker/certs.d/localhost:5443/ca.crt')).toBe(true)
    sh(
      `docker tag dgs-e2e/app3:1 localhost:5443/app3:1 && ${docker} push localhost:5443/app3:1 >/dev/null`
    )
    expect(sh(`curl -sf --cacert ${work}/tls.crt https://localhost:5443/v2/_catalog`)).toContain(
      'app3'
    )
  }, 120_000)
})

describe('a pull-through mirror', () => {
  it('serves an image that exists only upstream (another local registry) through the mirror', () => {
    removeContainers()
    // The upstream: another registry holding library/onlyupstream:1, published on loopback (for the
    // push) and on the bridge's gateway, the host address the mirror container reaches it by. It
    // restarts with the daemon, which the mirror's daemon.json change restarts.
    const gateway = sh(
      "docker network inspect bridge --format '{{(index .IPAM.Config 0).Gateway}}'"
    ).trim()
    sh(
      `docker run -d --name dgs-e2e-upstream --restart always -p 127.0.0.1:5099:5000 -p ${gateway}:5099:5000 registry:3 >/dev/null`
    )
    sh(
      'for i in $(seq 1 50); do curl -sf http://127.0.0.1:5099/v2/ >/dev/null && exit 0; sleep 0.2; done; exit 1'
    )
    sh(
      `docker tag dgs-e2e/app3:1 127.0.0.1:5099/library/onlyupstream:1 && ${docker} push 127.0.0.1:5099/library/onlyupstream:1 >/dev/null`
    )
    const run = runAction({...base, 'registry-mirror': `http://${gateway}:5099`})
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('+ registry-mirrors: ["http://127.0.0.1:5001"]')
    expect(container(MIRROR)?.running).toBe(true)
    sh('docker rmi -f 127.0.0.1:5099/library/onlyupstream:1 >/dev/null')
    // A Docker Hub name: the daemon asks its mirror first, and there is no other way out of here.
    sh(`${docker} pull onlyupstream:1 >/dev/null`)
    expect(sh('docker run --rm onlyupstream:1').trim()).toBe('app3')
    expect(readdirSync(`${data}-mirror/docker/registry/v2/repositories/library`)).toContain(
      'onlyupstream'
    )
  }, 180_000)
})

describe('an air-gapped registry image', () => {
  it('is loaded from registry-image-archive when it is not on the host', () => {
    removeContainers()
    sh(
      `docker tag registry:3 dgs-e2e/registry:archived && docker save -o ${work}/registry.tar dgs-e2e/registry:archived`
    )
    sh('docker rmi dgs-e2e/registry:archived >/dev/null')
    const run = runAction({
      ...base,
      'registry-image': 'dgs-e2e/registry:archived',
      'registry-image-archive': `${work}/registry.tar`
    })
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(`  - load dgs-e2e/registry:archived from ${work}/registry.tar`)
    expect(ran(run, 'docker') && run.commands.some(c => c.includes('pull'))).toBe(false)
    expect(sh(`docker inspect --format '{{.Config.Image}}' ${NAME}`).trim()).toBe(
      'dgs-e2e/registry:archived'
    )
    removeContainers()
  }, 120_000)
})

describe('cleanup: registry', () => {
  it('the post step removes only the registry this job started; its data stays', () => {
    removeContainers()
    const main = runAction({...base, cleanup: 'registry'})
    expect(main.code).toBe(0)
    expect(main.state['registry-containers']).toBe(JSON.stringify([NAME]))
    const post = runAction({cleanup: 'registry'}, {post: main.state})
    expect(post.code).toBe(0)
    expect(post.stdout).toContain(`cleanup: removed ${NAME}, which this job started`)
    expect(container()).toBeUndefined()
    expect(existsSync(`${data}/docker/registry/v2/repositories/app1`)).toBe(true)
    // A job that found the registry running started nothing, and removes nothing.
    expect(runAction(base).code).toBe(0)
    const again = runAction({...base, cleanup: 'registry'})
    const post2 = runAction({cleanup: 'registry'}, {post: again.state})
    expect(post2.code).toBe(0)
    expect(container()?.running).toBe(true)
  }, 120_000)
})
