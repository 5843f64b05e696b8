/**
 * The local registry in a disposable bookworm host with systemd. The registry image is built from
 * Debian's docker-registry (distribution 2.8, bed/images.ts) and tagged registry:3, the action's
 * default, so nothing is pulled; it reads the same REGISTRY_* variables as registry:3.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {errorLine, expectSuccess, parseOutputFile, ran, waitFor} from './harness.js'

const NAME = 'docker-gpu-setup-registry'
const MIRROR = 'docker-gpu-setup-mirror'
const HTPASSWD = '/etc/docker-gpu-setup/registry/htpasswd'
const data = '/srv/dgs-registry'
const docker = 'DOCKER_CONFIG=/root/dgs-docker-config docker'
const base = {
  'docker-source': 'distro',
  'gpu-runtime': 'none',
  'registry-data': data,
  'start-registry': 'true'
}
let box: Box

function container(name = NAME): {id: string; startedAt: string; running: boolean} | undefined {
  const out = box
    .sh(
      `docker inspect --format '{{.Id}} {{.State.StartedAt}} {{.State.Running}}' ${name} 2>/dev/null || true`
    )
    .trim()
  if (!out) return undefined
  const [id, startedAt, running] = out.split(' ')
  return {id, startedAt, running: running === 'true'}
}

function removeContainers(): void {
  box.sh(`docker rm -f ${NAME} ${NAME}-previous ${MIRROR} dgs-e2e-upstream >/dev/null 2>&1 || true`)
}

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'engine', images: true})
}, BOOT_TIMEOUT)
afterAll(() => box?.remove())

describe('a plain local registry', () => {
  it('starts, takes a push and gives the image back', () => {
    const run = box.run(base)
    expectSuccess(run)
    expect(run.outputs['registry-started']).toBe('true')
    expect(run.outputs.registry).toBe('localhost:5000')
    expect(
      box.sh(`docker inspect --format '{{.HostConfig.RestartPolicy.Name}}' ${NAME}`).trim()
    ).toBe('always')
    box.sh(
      `docker tag dgs-e2e/app1:1 localhost:5000/app1:1 && ${docker} push localhost:5000/app1:1 >/dev/null`
    )
    box.sh('docker rmi localhost:5000/app1:1 >/dev/null')
    box.sh(`${docker} pull localhost:5000/app1:1 >/dev/null`)
    expect(box.sh('docker run --rm localhost:5000/app1:1').trim()).toBe('app1')
    expect(box.sh(`ls ${data}/docker/registry/v2/repositories`)).toContain('app1')
  }, 120_000)

  it.each([
    ['root', undefined],
    ['the runner user', RUNNER_USER]
  ])('a rerun (as %s) leaves the same container running, not restarted', (_who, user) => {
    const before = container()
    const run = box.run(base, {user})
    expectSuccess(run)
    expect(container()).toEqual(before)
    expect(run.outputs['registry-started']).toBe('false')
  })

  it('data survives a container restart, a daemon restart and a recreate', () => {
    box.sh(`docker restart ${NAME} >/dev/null && systemctl restart docker.service`)
    const afterDaemon = box.run(base)
    expectSuccess(afterDaemon)
    expect(container()?.running).toBe(true)
    const before = container()
    // A spec change (a new bind address) recreates the container on the same data.
    const run = box.run({...base, 'registry-bind': '127.0.0.2'})
    expectSuccess(run)
    expect(run.outputs['registry-started']).toBe('true')
    expect(container()?.id).not.toBe(before?.id)
    expect(container(`${NAME}-previous`)).toBeUndefined()
    expect(box.sh('curl -sf http://127.0.0.2:5000/v2/app1/tags/list')).toContain('"1"')
    expectSuccess(box.run(base))
    expect(box.sh('curl -sf http://127.0.0.1:5000/v2/_catalog')).toContain('app1')
  }, 180_000)

  it('a port taken by another process fails naming it, and changes nothing', () => {
    box.sh(
      '(setsid python3 -m http.server --bind 127.0.0.1 5055 >/dev/null 2>&1 &); ' +
        'for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:5055/ && exit 0; sleep 0.1; done; exit 1'
    )
    const before = container()
    const run = box.run({...base, registry: 'localhost:5055', 'registry-data': '/srv/other'})
    box.sh('pkill -f "http.server --bind 127.0.0.1 5055"')
    expect(run.code).toBe(1)
    expect(errorLine(run)).toMatch(
      /^Port 5055 is taken by process "python3",pid=\d+,fd=\d+: the registry cannot publish on it\. Stop that, or choose another port \(registry: host:PORT\)\.$/
    )
    expect(container()).toEqual(before)
    expect(box.exists('/srv/other')).toBe(false)
  })

  it('a container of that name the action did not make is refused and left alone', () => {
    box.sh(
      `docker rm -f ${NAME} >/dev/null && docker run -d --name ${NAME} dgs-e2e/app1:1 /bin/busybox sleep 600 >/dev/null`
    )
    const before = container()
    const run = box.run(base)
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      `A container named ${NAME} exists that docker-gpu-setup did not create; it was left alone. Remove or rename it (docker rm -f ${NAME}) or run your own registry with start-registry: false.`
    )
    expect(container()).toEqual(before)
    box.sh(`docker rm -f ${NAME} >/dev/null`)
  })
})

describe('a registry with basic auth', () => {
  const password = 'n0t-in-any-log-4711'
  it('refuses anonymous pushes; a login then pushes; the password appears nowhere', () => {
    const run = box.run({...base, 'registry-htpasswd': `ci:${password}`})
    expectSuccess(run)
    // The runner consumes ::add-mask:: (it never shows it) and masks the value everywhere after.
    expect(run.stdout).toContain(`::add-mask::${password}`)
    const shown = run.stdout.replace(/^::add-mask::.*$/gm, '')
    expect(`${shown}${run.stderr}${run.summary}`).not.toContain(password)
    expect(run.commands.flat().join(' ')).not.toContain(password)
    box.sh('docker tag dgs-e2e/app2:1 localhost:5000/app2:1')
    const anon = box.sh(`${docker} push localhost:5000/app2:1 2>&1`, {allowFail: true})
    expect(anon).toMatch(/no basic auth credentials|unauthorized/)
    box.sh(`${docker} login localhost:5000 -u ci --password-stdin >/dev/null 2>&1`, {
      input: password
    })
    box.sh(`${docker} push localhost:5000/app2:1 >/dev/null`)
    expect(box.sh(`curl -sf -u ci:${password} http://127.0.0.1:5000/v2/_catalog`)).toContain('app2')
    // The password hashes are root's alone, and the registry (root in its container) reads them.
    expect(box.sh(`stat -c '%U %a' ${HTPASSWD}`).trim()).toBe('root 600')
    // The rerun keeps the file (the password still matches) and the container; a file an older
    // release left readable by everyone is closed, nothing else changes.
    box.sh(`chmod 0644 ${HTPASSWD}`)
    const text = box.read(HTPASSWD)
    const before = container()
    const again = box.run({...base, 'registry-htpasswd': `ci:${password}`})
    expectSuccess(again)
    expect(container()).toEqual(before)
    expect(box.sh(`stat -c '%U %a' ${HTPASSWD}`).trim()).toBe('root 600')
    expect(box.read(HTPASSWD)).toBe(text)
    expect(box.sh(`curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/v2/`)).toBe('401')
    expect(box.sh(`curl -sf -u ci:${password} http://127.0.0.1:5000/v2/_catalog`)).toContain('app2')
  }, 120_000)
})

describe('a registry over TLS', () => {
  it("serves HTTPS with a self-signed certificate that this host's daemon trusts", () => {
    const run = box.run({
      ...base,
      registry: 'localhost:5443',
      'registry-data': '/srv/tls-data',
      'registry-tls-cert': `${IN_BOX.fixtures}/tls/tls.crt`,
      'registry-tls-key': `${IN_BOX.fixtures}/tls/tls.key`
    })
    expectSuccess(run)
    expect(box.exists('/etc/docker/certs.d/localhost:5443/ca.crt')).toBe(true)
    box.sh(
      `docker tag dgs-e2e/app3:1 localhost:5443/app3:1 && ${docker} push localhost:5443/app3:1 >/dev/null`
    )
    expect(
      box.sh(`curl -sf --cacert ${IN_BOX.fixtures}/tls/tls.crt https://localhost:5443/v2/_catalog`)
    ).toContain('app3')
  }, 120_000)
})

describe('a pull-through mirror', () => {
  it('serves an image that exists only upstream (another local registry) through the mirror', () => {
    removeContainers()
    // The upstream: another registry holding library/onlyupstream:1, published on loopback (for the
    // push) and on the bridge's gateway, the host address the mirror container reaches it by. It
    // restarts with the daemon, which the mirror's daemon.json change restarts.
    const gateway = box
      .sh("docker network inspect bridge --format '{{(index .IPAM.Config 0).Gateway}}'")
      .trim()
    box.sh(
      `docker run -d --name dgs-e2e-upstream --restart always -p 127.0.0.1:5099:5000 -p ${gateway}:5099:5000 registry:3 >/dev/null`
    )
    box.sh(
      'for i in $(seq 1 50); do curl -sf http://127.0.0.1:5099/v2/ >/dev/null && exit 0; sleep 0.2; done; exit 1'
    )
    box.sh(
      `docker tag dgs-e2e/app3:1 127.0.0.1:5099/library/onlyupstream:1 && ${docker} push 127.0.0.1:5099/library/onlyupstream:1 >/dev/null`
    )
    const run = box.run({...base, 'registry-mirror': `http://${gateway}:5099`})
    expectSuccess(run)
    expect(run.stdout).toContain('+ registry-mirrors: ["http://127.0.0.1:5001"]')
    expect(container(MIRROR)?.running).toBe(true)
    box.sh('docker rmi -f 127.0.0.1:5099/library/onlyupstream:1 >/dev/null')
    // A Docker Hub name: the daemon asks its mirror first, and there is no other way out of here.
    box.sh(`${docker} pull onlyupstream:1 >/dev/null`)
    expect(box.sh('docker run --rm onlyupstream:1').trim()).toBe('app3')
    expect(box.sh(`ls ${data}-mirror/docker/registry/v2/repositories/library`)).toContain(
      'onlyupstream'
    )
  }, 180_000)
})

describe('an air-gapped registry image', () => {
  it('is loaded from registry-image-archive when it is not on the host', () => {
    removeContainers()
    box.sh(
      'docker tag registry:3 dgs-e2e/registry:archived && docker save -o /srv/registry.tar dgs-e2e/registry:archived && docker rmi dgs-e2e/registry:archived >/dev/null'
    )
    const run = box.run({
      ...base,
      'registry-image': 'dgs-e2e/registry:archived',
      'registry-image-archive': '/srv/registry.tar'
    })
    expectSuccess(run)
    expect(run.stdout).toContain('  - load dgs-e2e/registry:archived from /srv/registry.tar')
    expect(ran(run, 'docker') && run.commands.some(c => c.includes('pull'))).toBe(false)
    expect(box.sh(`docker inspect --format '{{.Config.Image}}' ${NAME}`).trim()).toBe(
      'dgs-e2e/registry:archived'
    )
    removeContainers()
  }, 120_000)
})

describe('cleanup', () => {
  it('the post step with cleanup: registry removes only the registry this job started; its data stays', () => {
    removeContainers()
    const main = box.run({...base, cleanup: 'registry'})
    expectSuccess(main)
    expect(main.state['registry-containers']).toBe(JSON.stringify([NAME]))
    const post = box.run({cleanup: 'registry'}, {post: main.state})
    expectSuccess(post)
    expect(post.stdout).toContain(`cleanup: removed ${NAME}, which this job started`)
    expect(container()).toBeUndefined()
    expect(box.exists(`${data}/docker/registry/v2/repositories/app1`)).toBe(true)
    // A job that found the registry running started nothing, and removes nothing.
    expectSuccess(box.run(base))
    const again = box.run({...base, cleanup: 'registry'})
    const post2 = box.run({cleanup: 'registry'}, {post: again.state})
    expectSuccess(post2)
    expect(container()?.running).toBe(true)
  }, 120_000)

  it('keeps a registry another live job found running and used; says which job, in the log and the summary', async () => {
    removeContainers()
    box.sh(
      `install -m 0755 ${IN_BOX.scripts}/runner-worker.sh /usr/local/bin/Runner.Worker && mkdir -p -m 1777 /tmp/jobs`
    )
    // Two jobs, each under a stand-in Runner.Worker (the process a job's steps run under).
    const job = (name: string) => {
      const dir = `/tmp/jobs/${name}`
      const run = box.start(
        {...base, cleanup: 'registry'},
        {
          wrap: ['/usr/local/bin/Runner.Worker', dir],
          env: {GITHUB_JOB: name, GITHUB_REPOSITORY: 'org/repo', GITHUB_RUN_ID: '42'}
        }
      )
      const main = async () => {
        await waitFor(() => box.exists(`${dir}/main.rc`), 120_000, `${name}'s main step`)
        return parseOutputFile(box.read(`${dir}/main.output`) ?? '')
      }
      const post = async () => {
        box.sh(`touch ${dir}/post`)
        const done = await run.done
        expect(box.read(`${dir}/post.rc`)?.trim()).toBe('0')
        return done
      }
      return {main, post, pid: () => box.read(`${dir}/pid`)?.trim()}
    }
    const a = job('first')
    expect((await a.main())['registry-started']).toBe('true')
    const b = job('second')
    expect((await b.main())['registry-started']).toBe('false')
    const started = container()
    const postA = await a.post()
    expect(postA.stdout).toContain(
      `cleanup: kept ${NAME}, which this job started: another job uses it (job second (org/repo run 42), worker pid ${b.pid()}).`
    )
    expect(postA.summary).toContain(`cleanup: kept the registry containers other jobs use: ${NAME}`)
    expect(container()).toEqual(started)
    // The second job started nothing: it removes nothing either, and leaves no record behind.
    const postB = await b.post()
    expect(postB.stdout).toContain('this job started no registry container')
    expect(container()).toEqual(started)
    expect(box.sh('ls -A /run/docker-gpu-setup')).not.toContain('registry-user.')
  }, 300_000)

  it.each(['None', 'NONE', 'none'])(
    'cleanup: %s keeps the registry the job started (the post step acts on what the main step parsed)',
    value => {
      removeContainers()
      const main = box.run({...base, cleanup: value})
      expectSuccess(main)
      expect(main.outputs['registry-started']).toBe('true')
      const post = box.run({cleanup: value}, {post: main.state})
      expectSuccess(post)
      expect(post.stdout).toContain('cleanup: none')
      expect(container()?.running).toBe(true)
    },
    120_000
  )
})
