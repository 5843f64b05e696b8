/**
 * Proxies in disposable hosts, through Debian's tinyproxy running in the box: apt under sudo, the
 * daemon (a systemd drop-in on Docker 20.10, daemon.json on 26.1), a pull-through cache's upstream
 * fetches and the job's containers go through it; the local registry does not. The upstreams sit
 * on the box's own Docker network, at addresses that are not this host's (which no-proxy covers).
 *
 * tinyproxy 1.11 keeps only the first of repeated request headers, so a Go client's repeated
 * Accept headers reach a plain-HTTP registry behind it cut short and manifest requests may fail;
 * HTTPS (CONNECT) is passed through untouched. The tests therefore prove where requests go (the
 * proxy's log), not that a plain-HTTP pull through tinyproxy succeeds; the action's own push
 * (one header of each name) does succeed through it.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {expectSuccess} from './harness.js'

const LOG = '/var/log/dgs-proxy.log'
const DROP_IN = '/etc/systemd/system/docker.service.d/zz-docker-gpu-setup-proxy.conf'
const ENV_FILE = '/etc/docker-gpu-setup/docker-proxy.env'
const BACKUP = '/etc/docker/daemon.json.bak-docker-gpu-setup'
/** A proxy password: it must appear in no file another user can read. */
const PASSWORD = 'pr0xy-s3cret-4711'
const docker = 'DOCKER_CONFIG=/root/dgs-docker-config docker'
const base = {'docker-source': 'distro', 'gpu-runtime': 'none', 'registry-data': '/srv/dgs'}

/** Installs tinyproxy (before any proxy is set) and runs an instance of its own on :3128. */
function startProxy(box: Box): void {
  box.sh(
    'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tinyproxy >/dev/null 2>&1'
  )
  box.write(
    '/etc/dgs-proxy.conf',
    `Port 3128\nTimeout 600\nLogFile "${LOG}"\nLogLevel Info\nMaxClients 100\nPidFile "/run/dgs-proxy.pid"\nUser tinyproxy\nGroup tinyproxy\n`
  )
  box.sh(
    `install -o tinyproxy -g tinyproxy -m 644 /dev/null ${LOG} && tinyproxy -c /etc/dgs-proxy.conf && ` +
      'for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/3128) 2>/dev/null && exit 0; sleep 0.1; done; exit 1'
  )
}

/** The requests the proxy logged after line `from` (1-based), one per line. */
function requests(box: Box, from = 1): string[] {
  return box
    .sh(`tail -n +${from} ${LOG} | grep -o 'Request (file descriptor [0-9]*): .*' || true`)
    .split('\n')
    .filter(Boolean)
    .map(l => l.replace(/^Request \(file descriptor \d+\): /, ''))
}

function logLines(box: Box): number {
  return Number(box.sh(`wc -l < ${LOG}`).trim()) + 1
}

/** The box's own address on its inner Docker network: where containers reach the proxy. */
function bridgeAddress(box: Box): string {
  return box.sh("ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1").trim()
}

/** An upstream registry on the box's Docker network holding org/app2:1; its address there. */
function upstream(box: Box): string {
  box.sh(
    'docker run -d --name dgs-up -p 127.0.0.1:5091:5000 registry:3 >/dev/null && ' +
      'for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:5091/v2/ && break; sleep 0.2; done && ' +
      `docker tag dgs-e2e/app2:1 localhost:5091/org/app2:1 && ${docker} push localhost:5091/org/app2:1 >/dev/null`
  )
  return box.sh("docker inspect -f '{{.NetworkSettings.IPAddress}}' dgs-up").trim()
}

/** A client config or daemon.json as these tests read them. */
interface ConfigFile {
  auths?: Record<string, unknown>
  proxies?: Record<string, string> & {default?: Record<string, string>}
}

function readJson(box: Box, file: string): ConfigFile {
  return JSON.parse(box.read(file) ?? '{}') as ConfigFile
}

function daemonProxies(box: Box): string {
  return box.sh("docker info --format '{{.HTTPProxy}}|{{.HTTPSProxy}}|{{.NoProxy}}'").trim()
}

function containerEnv(box: Box, name: string): string[] {
  return JSON.parse(box.sh(`docker inspect -f '{{json .Config.Env}}' ${name}`)) as string[]
}

describe('Docker 20.10 with systemd (bookworm): apt, a drop-in, the caches and the job', () => {
  let box: Box
  let proxy = ''
  let up = ''
  const inputs = () => ({
    ...base,
    'http-proxy': proxy,
    'https-proxy': proxy,
    'no-proxy': '.corp.example',
    'registry-htpasswd': 'ci:pw-4711',
    username: 'ci',
    password: 'pw-4711',
    images: 'dgs-e2e/app1:1'
  })
  const job = {user: RUNNER_USER, env: {RUNNER_TEMP: '/srv/job'}}

  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'base'})
    startProxy(box)
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('apt under sudo goes through the proxy of the runner’s environment (no proxy input)', () => {
    const from = logLines(box)
    const run = box.run(
      {'docker-source': 'distro', 'gpu-runtime': 'none', 'start-registry': 'false'},
      {
        user: RUNNER_USER,
        env: {http_proxy: 'http://127.0.0.1:3128', https_proxy: 'http://127.0.0.1:3128'}
      }
    )
    expectSuccess(run)
    // The tests after this one use the engine it installed, with the test images.
    box.loadImages()
    expect(run.outputs['docker-changed']).toBe('true')
    expect(run.commands).toContainEqual(
      expect.arrayContaining(['sudo', '-n', '--preserve-env=http_proxy,https_proxy'])
    )
    const seen = requests(box, from)
    // apt fetched the engine's packages through it, although sudo resets the environment.
    expect(seen).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^GET http:\/\/deb\.debian\.org\/debian\/pool\/.*docker\.io_.*\.deb /)
      ])
    )
    // Nothing is configured from the runner's environment.
    expect(box.exists(DROP_IN)).toBe(false)
    // The summary is Markdown: its underscores are escaped.
    expect(run.summary).toContain(
      "no proxy inputs; the runner environment's http\\_proxy, https\\_proxy reach the commands this action runs (under sudo too), nothing is configured"
    )
  }, 300_000)

  it('the daemon gets them through a drop-in, the job’s containers through its client configs; the local registry is direct', () => {
    proxy = `http://${bridgeAddress(box)}:3128`
    box.sh(`install -d -o ${RUNNER_USER} /srv/job`)
    const from = logLines(box)
    const run = box.run(inputs(), job)
    expectSuccess(run)
    expect((JSON.parse(run.outputs.images) as {status: string}[])[0].status).toBe('pushed')
    const address = box.sh("ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1").trim()
    const noProxy = `.corp.example,localhost,127.0.0.0/8,::1,dgs-box,${address}`
    expect(box.read(DROP_IN)).toBe(
      [
        '# Written by docker-gpu-setup from its http-proxy, https-proxy and no-proxy inputs.',
        '# The values are in the file below (0600 root: a proxy URL may carry a password).',
        '[Service]',
        `EnvironmentFile=${ENV_FILE}`,
        ''
      ].join('\n')
    )
    expect(box.read(ENV_FILE)).toBe(
      [
        '# Written by docker-gpu-setup from its http-proxy, https-proxy and no-proxy inputs.',
        `HTTP_PROXY="${proxy}"`,
        `HTTPS_PROXY="${proxy}"`,
        `NO_PROXY="${noProxy}"`,
        ''
      ].join('\n')
    )
    expect(box.read('/etc/docker/daemon.json') ?? '{}').not.toContain('proxies')
    expect(daemonProxies(box)).toBe(`${proxy}|${proxy}|${noProxy}`)
    expect(run.stdout).toContain('restart Docker (the proxies changed')
    // The push to the local registry went direct.
    expect(requests(box, from).filter(r => /localhost:5000|127\.0\.0\.1:5000/.test(r))).toEqual([])
    // The job's containers: the runner user's config and the login's per-job config.
    const own = readJson(box, `/home/${RUNNER_USER}/.docker/config.json`)
    expect(own.proxies?.default).toEqual({httpProxy: proxy, httpsProxy: proxy, noProxy})
    expect(box.sh(`stat -c '%U %a' /home/${RUNNER_USER}/.docker/config.json`).trim()).toBe(
      `${RUNNER_USER} 600`
    )
    const perJob = readJson(box, '/srv/job/docker-gpu-setup-docker-config/config.json')
    expect(Object.keys(perJob.auths ?? {})).toEqual(['localhost:5000'])
    expect(perJob.proxies?.default?.httpProxy).toBe(proxy)
    const env = box.sh(
      `docker --config /home/${RUNNER_USER}/.docker run --rm dgs-e2e/app1:1 /bin/busybox env`
    )
    expect(env).toContain(`HTTP_PROXY=${proxy}`)
    expect(env).toContain(`no_proxy=${noProxy}`)
  }, 300_000)

  it('a cache fetches upstream through the proxy, and so does the daemon; a rerun changes nothing', () => {
    up = upstream(box)
    const pid = box.dockerdPid()
    const from = logLines(box)
    const run = box.run({...inputs(), 'registry-caches': `http://${up}:5000`}, job)
    expectSuccess(run)
    // Same proxies: the daemon was left running.
    expect(box.dockerdPid()).toBe(pid)
    expect(run.outputs['daemon-config-changed']).toBe('false')
    const cache = `docker-gpu-setup-cache-${up}-5000`
    expect(containerEnv(box, cache)).toEqual(expect.arrayContaining([`HTTP_PROXY=${proxy}`]))
    expect(run.commands.flat().join(' ')).not.toContain(`HTTP_PROXY=${proxy}`)
    box.sh(
      "curl -s -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' http://127.0.0.1:5002/v2/org/app2/manifests/1"
    )
    box.sh(`${docker} pull ${up}:5000/org/app2:1 >/dev/null 2>&1 || true`)
    const seen = requests(box, from)
    expect(seen).toContain(`GET http://${up}:5000/v2/ HTTP/1.1`)
    expect(seen).toContain(`GET http://${up}:5000/v2/org/app2/manifests/1 HTTP/1.1`)
    // The daemon's own pull: HTTPS to a registry it does not trust as insecure, tunnelled.
    expect(seen).toContain(`CONNECT ${up}:5000 HTTP/1.1`)
    const again = box.run({...inputs(), 'registry-caches': `http://${up}:5000`}, job)
    expectSuccess(again)
    expect(again.summary).toContain('host already right: nothing changed')
    expect(box.dockerdPid()).toBe(pid)
  }, 300_000)

  it('a proxy password stays in a 0600 root file: not in the drop-in, nor in systemctl show; Docker still uses the proxy', () => {
    const secret = `http://dgs:${PASSWORD}@${bridgeAddress(box)}:3128`
    const run = box.run({...inputs(), 'http-proxy': secret, 'https-proxy': secret}, job)
    expectSuccess(run)
    expect(run.stdout).toContain('restart Docker (the proxies changed')
    expect(box.sh(`stat -c '%U %a' ${ENV_FILE}`).trim()).toBe('root 600')
    expect(box.read(ENV_FILE)).toContain(`HTTPS_PROXY="${secret}"`)
    expect(box.read(DROP_IN)).not.toContain(PASSWORD)
    // What any local user can read of the unit, and of the daemon's files.
    const shown = box.sh(
      `su nobody -s /bin/sh -c 'systemctl show docker.service -p Environment -p EnvironmentFiles; cat /etc/docker/daemon.json ${DROP_IN}; cat ${ENV_FILE}' 2>&1 || true`
    )
    expect(shown).toContain(`EnvironmentFiles=${ENV_FILE}`)
    expect(shown).not.toContain(PASSWORD)
    expect(box.sh(`stat -c '%U %a' /etc/docker-gpu-setup/registry/htpasswd`).trim()).toBe(
      'root 600'
    )
    // The daemon uses it (docker info masks the password), and its pulls go through it.
    expect(daemonProxies(box)).toMatch(/^http:\/\/xxxxx:xxxxx@/)
    const from = logLines(box)
    box.sh(`${docker} pull ${up}:5000/org/app2:1 >/dev/null 2>&1 || true`)
    expect(requests(box, from)).toContain(`CONNECT ${up}:5000 HTTP/1.1`)
  }, 300_000)
})

describe('Docker 26.1 with systemd (trixie): daemon.json proxies', () => {
  let box: Box
  let proxy = ''

  beforeAll(() => {
    box = Box.start({suite: 'trixie', state: 'engine', images: true})
    startProxy(box)
    proxy = `http://${bridgeAddress(box)}:3128`
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('the daemon gets them in daemon.json, no drop-in; caches fetch through them; a rerun changes nothing', () => {
    const inputs = {...base, 'https-proxy': proxy, 'http-proxy': proxy, images: 'dgs-e2e/app1:1'}
    const from = logLines(box)
    const first = box.run(inputs)
    expectSuccess(first)
    const written = readJson(box, '/etc/docker/daemon.json').proxies
    const noProxy = written?.['no-proxy'] ?? ''
    expect(written).toEqual({
      'http-proxy': proxy,
      'https-proxy': proxy,
      'no-proxy': noProxy
    })
    expect(noProxy).toMatch(/^localhost,127\.0\.0\.0\/8,::1,dgs-box,/)
    expect(box.exists(DROP_IN)).toBe(false)
    expect(daemonProxies(box)).toBe(`${proxy}|${proxy}|${noProxy}`)
    expect(requests(box, from).filter(r => /localhost:5000|127\.0\.0\.1:5000/.test(r))).toEqual([])

    const up = upstream(box)
    const pid = box.dockerdPid()
    const withCache = {...inputs, 'registry-caches': `http://${up}:5000`}
    const run = box.run(withCache)
    expectSuccess(run)
    expect(box.dockerdPid()).toBe(pid)
    expect(containerEnv(box, `docker-gpu-setup-cache-${up}-5000`)).toEqual(
      expect.arrayContaining([`HTTPS_PROXY=${proxy}`, `NO_PROXY=${noProxy}`])
    )
    box.sh(
      "curl -s -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' http://127.0.0.1:5002/v2/org/app2/manifests/1"
    )
    expect(requests(box, from)).toContain(`GET http://${up}:5000/v2/org/app2/manifests/1 HTTP/1.1`)
    const again = box.run(withCache)
    expectSuccess(again)
    expect(again.summary).toContain('host already right: nothing changed')
    expect(box.dockerdPid()).toBe(pid)

    // A push to a registry beyond the proxy: the action's own requests go through it, as the
    // daemon's would (the daemon holds that registry insecure: unchecked HTTPS, then HTTP).
    const remote = `${up}:5000`
    const before = logLines(box)
    const pushed = box.run({
      ...withCache,
      images: `dgs-e2e/app1:1 => ${remote}/org/app1:9`,
      'daemon-config': JSON.stringify({'insecure-registries': [remote]})
    })
    expectSuccess(pushed)
    const [image] = JSON.parse(pushed.outputs.images) as {status: string; digest: string}[]
    expect(image.status).toBe('pushed')
    const seen = requests(box, before)
    expect(seen).toContain(`GET http://${remote}/v2/ HTTP/1.1`)
    expect(seen).toContain(`PUT http://${remote}/v2/org/app1/manifests/9 HTTP/1.1`)
    // What landed there, read directly from the registry's published port.
    const held = box.sh(
      `curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' http://127.0.0.1:5091/v2/org/app1/manifests/9 | tr -d '\\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}'`
    )
    expect(held.trim()).toBe(image.digest)
  }, 300_000)

  it('a proxy password makes daemon.json (and a backup holding it) 0600 root; Docker still uses the proxy', () => {
    const secret = `http://dgs:${PASSWORD}@${bridgeAddress(box)}:3128`
    const inputs = {...base, 'https-proxy': secret, 'http-proxy': secret, 'start-registry': 'false'}
    expect(box.sh('stat -c %a /etc/docker/daemon.json').trim()).toBe('644')
    expectSuccess(box.run(inputs))
    expect(box.sh('stat -c "%U %a" /etc/docker/daemon.json').trim()).toBe('root 600')
    expect(readJson(box, '/etc/docker/daemon.json').proxies?.['https-proxy']).toBe(secret)
    // The next change backs up a file that holds the password: the backup is closed too.
    expectSuccess(box.run({...inputs, 'no-proxy': '.corp.example'}))
    expect(box.read(`${BACKUP}`)).toContain(PASSWORD)
    expect(box.sh(`stat -c "%U %a" /etc/docker/daemon.json ${BACKUP}`).trim()).toBe(
      'root 600\nroot 600'
    )
    expect(daemonProxies(box)).toMatch(/^http:\/\/xxxxx:xxxxx@/)
    const from = logLines(box)
    const up = box.sh("docker inspect -f '{{.NetworkSettings.IPAddress}}' dgs-up").trim()
    box.sh(`docker rmi ${up}:5000/org/app1:9 >/dev/null 2>&1 || true`)
    box.sh(`${docker} pull ${up}:5000/org/app1:9 >/dev/null 2>&1 || true`)
    expect(requests(box, from)).toContain(`CONNECT ${up}:5000 HTTP/1.1`)
    // A file an older release left readable by all is closed by the next run, changing nothing else.
    box.sh(`chmod 0644 /etc/docker/daemon.json ${BACKUP}`)
    const pid = box.dockerdPid()
    const again = box.run({...inputs, 'no-proxy': '.corp.example'})
    expectSuccess(again)
    expect(again.stdout).toContain(
      '/etc/docker/daemon.json holds a proxy password: now readable by root alone (0600).'
    )
    expect(box.sh(`stat -c "%U %a" /etc/docker/daemon.json ${BACKUP}`).trim()).toBe(
      'root 600\nroot 600'
    )
    expect(box.dockerdPid()).toBe(pid)
    // Without a password the owner's mode is kept: here a 0640 the owner chose.
    box.sh('chmod 0640 /etc/docker/daemon.json')
    expectSuccess(
      box.run({...base, 'start-registry': 'false', 'http-proxy': proxy, 'https-proxy': proxy})
    )
    expect(readJson(box, '/etc/docker/daemon.json').proxies?.['http-proxy']).toBe(proxy)
    expect(box.sh('stat -c "%U %a" /etc/docker/daemon.json').trim()).toBe('root 640')
  }, 300_000)
})

describe('Docker 20.10 with no init (bookworm): the environment of the dockerd the action starts', () => {
  let box: Box

  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'engine', init: 'none'})
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('restarts a dockerd started without them, says so, and leaves its own alone on a rerun', () => {
    // A dockerd started some other way, without the proxies in its environment.
    box.sh('(setsid dockerd >/var/log/dgs-manual-dockerd.log 2>&1 &)')
    box.waitDocker()
    const before = box.dockerdPid()
    const proxy = 'http://proxy.corp.example:3128'
    const inputs = {...base, 'start-registry': 'false', 'http-proxy': proxy}
    const run = box.run(inputs)
    expectSuccess(run)
    expect(run.stdout).toContain(
      'restart Docker (dockerd runs without the proxies in its environment)'
    )
    expect(run.summary).toContain(
      'the proxies reach dockerd only through the environment of the dockerd this action starts, so Docker restarts now.'
    )
    const after = box.dockerdPid()
    expect(after).not.toBe(before)
    expect(daemonProxies(box)).toMatch(/^http:\/\/proxy\.corp\.example:3128\|\|localhost,/)
    expect(box.sh(`tr '\\0' '\\n' < /proc/${after}/environ | grep '^HTTP_PROXY='`).trim()).toBe(
      `HTTP_PROXY=${proxy}`
    )
    const again = box.run(inputs)
    expectSuccess(again)
    expect(box.dockerdPid()).toBe(after)
    expect(again.stdout).not.toContain('restart Docker')
  }, 240_000)
})
