/**
 * Pull-through caches of registries other than Docker Hub (registry-caches) in a disposable
 * bookworm host with systemd. The upstreams are other local registries on the box's own Docker
 * network, each holding a different image (nothing here can reach nvcr.io or ghcr.io); one sits
 * behind a token login like theirs, which its cache gets from registry-cache-credentials.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {expectSuccess} from './harness.js'

const data = '/srv/dgs'
const docker = 'DOCKER_CONFIG=/root/dgs-docker-config docker'
const base = {'docker-source': 'distro', 'gpu-runtime': 'none', 'registry-data': data}
const TOKEN = 'upstream-t0ken-never-logged'
let box: Box
/** The upstreams' addresses on the box's Docker network. */
const up: Record<'a' | 'b' | 'c', string> = {a: '', b: '', c: ''}
/** The Docker Hub mirror's upstream (a mirror of Docker Hub, as registry-mirror: URL means). */
let hub = ''

/** Runs an upstream registry on the box's network, published on loopback for pushes into it. */
function upstream(name: 'a' | 'b' | 'c', port: number, extra = ''): string {
  box.sh(
    `docker run -d --name dgs-up-${name} -p 127.0.0.1:${port}:5000 ${extra} registry:3 >/dev/null && ` +
      `for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:${port}/v2/ && exit 0; sleep 0.2; done; exit 1`
  )
  return box.sh(`docker inspect -f '{{.NetworkSettings.IPAddress}}' dgs-up-${name}`).trim()
}

/** A container's id; empty when there is none of that name. */
function containerId(name: string): string {
  return box.sh(`docker inspect -f '{{.Id}}' ${name} 2>/dev/null || true`).trim()
}

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'engine', images: true})
}, BOOT_TIMEOUT)
afterAll(() => box?.remove())

describe('pull-through caches of other registries', () => {
  const caches = () => ({
    ...base,
    'registry-mirror': hub,
    'registry-caches': `http://${up.a}:5000\nhttp://${up.b}:5000`
  })

  it('each serves its own upstream’s image, and registry-mirrors still lists only the Hub mirror', () => {
    // A pull-through registry asks its upstream for /v2/ as it starts (and exits when it cannot):
    // the Hub mirror's stand-in upstream is on the bridge's gateway, which survives restarts.
    const gateway = box.sh("ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1").trim()
    box.sh(
      `docker run -d --name dgs-up-hub --restart always -p ${gateway}:5099:5000 registry:3 >/dev/null`
    )
    hub = `http://${gateway}:5099`
    // The Hub mirror first: its daemon.json change restarts Docker before the upstreams get
    // their addresses, which a restart could shuffle.
    expectSuccess(box.run({...base, 'registry-mirror': hub}))
    up.a = upstream('a', 5091)
    up.b = upstream('b', 5092)
    box.sh(
      `docker tag dgs-e2e/app1:1 localhost:5091/team/app1:1 && ${docker} push localhost:5091/team/app1:1 >/dev/null && ` +
        `docker tag dgs-e2e/app2:1 localhost:5092/org/app2:1 && ${docker} push localhost:5092/org/app2:1 >/dev/null && ` +
        'docker rmi localhost:5091/team/app1:1 localhost:5092/org/app2:1 >/dev/null'
    )
    const run = box.run(caches())
    expectSuccess(run)
    expect(JSON.parse(run.outputs.caches)).toEqual({
      [`http://${up.a}:5000`]: 'localhost:5002',
      [`http://${up.b}:5000`]: 'localhost:5003'
    })
    // Caches are no daemon.json change: Docker was not restarted for them.
    expect(run.outputs['daemon-config-changed']).toBe('false')
    const daemonJson = JSON.parse(box.read('/etc/docker/daemon.json') ?? '{}') as Record<
      string,
      unknown
    >
    expect(daemonJson['registry-mirrors']).toEqual(['http://127.0.0.1:5001'])
    expect(run.summary).toContain(
      `| http://${up.a}:5000 | localhost:5002 | \`docker pull localhost:5002/<path>:<tag>\` instead of \`${up.a}:5000/<path>:<tag>\` |`
    )
    box.sh(`${docker} pull localhost:5002/team/app1:1 >/dev/null`)
    expect(box.sh('docker run --rm localhost:5002/team/app1:1').trim()).toBe('app1')
    box.sh(`${docker} pull localhost:5003/org/app2:1 >/dev/null`)
    expect(box.sh('docker run --rm localhost:5003/org/app2:1').trim()).toBe('app2')
    // A cache serves its own upstream only.
    const wrong = box.sh(`${docker} pull localhost:5002/org/app2:1 2>&1`, {allowFail: true})
    expect(wrong).toMatch(/not found|manifest unknown/)
    expect(box.exists(`${data}-cache-${up.a}-5000/docker/registry/v2/repositories/team/app1`)).toBe(
      true
    )
    expect(box.exists(`${data}-cache-${up.b}-5000/docker/registry/v2/repositories/org/app2`)).toBe(
      true
    )
  }, 300_000)

  it('a second pull is served from the cache’s data, with its upstream gone', () => {
    box.sh('docker stop dgs-up-a >/dev/null && docker rmi localhost:5002/team/app1:1 >/dev/null')
    expect(
      box.sh('curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:5091/v2/ || true')
    ).not.toBe('200')
    box.sh(`${docker} pull localhost:5002/team/app1:1 >/dev/null`)
    expect(box.sh('docker run --rm localhost:5002/team/app1:1').trim()).toBe('app1')
  }, 120_000)

  it('a rerun with the same inputs keeps every container and changes nothing', () => {
    const names = [
      'docker-gpu-setup-registry',
      'docker-gpu-setup-mirror',
      `docker-gpu-setup-cache-${up.a}-5000`,
      `docker-gpu-setup-cache-${up.b}-5000`
    ]
    const before = names.map(containerId)
    const run = box.run(caches())
    expectSuccess(run)
    expect(names.map(containerId)).toEqual(before)
    expect(run.outputs['registry-started']).toBe('false')
    expect(run.summary).toContain('host already right: nothing changed')
  }, 120_000)
})

/**
 * A private upstream as registries such as nvcr.io and ghcr.io run one: /v2/ answers 401 with a
 * Bearer challenge whose realm hands out a token for the right user and password; with that
 * token, requests are passed to an anonymous registry behind it. (distribution 2.8, the registry
 * this bed can build, sends proxy credentials only to a token realm, not to a Basic challenge.)
 */
const TOKEN_GATE = `
import base64, http.server, json, sys, urllib.error, urllib.request
port, upstream, user = int(sys.argv[1]), sys.argv[2], sys.argv[3]
password = open('/srv/gate/secret').read().rstrip('\\n')
good = 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()
issued = 'Bearer gate-token-1'
log = open('/srv/gate/log', 'a')

class Gate(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def deny(self):
        body = b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        realm = f'Bearer realm="http://{self.headers["Host"]}/token",service="gate"'
        self.reply(401, [('WWW-Authenticate', realm), ('Content-Type', 'application/json'),
                         ('Content-Length', str(len(body)))], body)

    def serve(self):
        auth = self.headers.get('Authorization', '')
        if self.path.startswith('/token'):
            log.write('token ' + ('granted' if auth == good else 'refused') + '\\n')
            log.flush()
            if auth != good:
                return self.reply(401, [('Content-Length', '0')], b'')
            body = json.dumps({'token': 'gate-token-1', 'expires_in': 3600}).encode()
            return self.reply(200, [('Content-Type', 'application/json'),
                                    ('Content-Length', str(len(body)))], body)
        if auth != issued:
            return self.deny()
        req = urllib.request.Request(upstream + self.path, method=self.command)
        accept = self.headers.get_all('Accept') or []
        if accept:
            req.add_header('Accept', ', '.join(accept))
        try:
            res = urllib.request.urlopen(req)
        except urllib.error.HTTPError as e:
            res = e
        body = res.read()
        keep = ('Content-Type', 'Content-Length', 'Docker-Content-Digest', 'Docker-Distribution-Api-Version')
        self.reply(res.status, [(k, v) for k, v in res.headers.items() if k in keep], body)

    do_GET = do_HEAD = serve

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(('0.0.0.0', port), Gate).serve_forever()
`

describe('a private upstream', () => {
  it('is cached with registry-cache-credentials, whatever start-registry says; the token reaches no argv, log or summary', () => {
    up.c = upstream('c', 5093)
    box.sh(
      `docker tag dgs-e2e/app3:1 localhost:5093/priv/app3:1 && ${docker} push localhost:5093/priv/app3:1 >/dev/null && docker rmi localhost:5093/priv/app3:1 >/dev/null`
    )
    box.write('/srv/gate/gate.py', TOKEN_GATE)
    box.write('/srv/gate/secret', `${TOKEN}\n`)
    box.sh(
      '(setsid python3 /srv/gate/gate.py 5094 http://127.0.0.1:5093 ci >/srv/gate/out 2>&1 &); ' +
        'for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:5094/v2/ && exit 0; sleep 0.1; done; exit 1'
    )
    expect(box.sh('curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:5094/v2/')).toBe('401')
    // The cache container reaches the gate on the box's bridge address.
    const gate = `http://${box.sh("ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1").trim()}:5094`
    const registry = containerId('docker-gpu-setup-registry')
    const run = box.run(
      {
        ...base,
        'start-registry': 'false',
        'registry-caches': gate,
        'registry-cache-port': '5010',
        'registry-cache-credentials': `${gate} ci:${TOKEN}`
      },
      {user: RUNNER_USER}
    )
    expectSuccess(run)
    expect(JSON.parse(run.outputs.caches)).toEqual({[gate]: 'localhost:5010'})
    box.sh(`${docker} pull localhost:5010/priv/app3:1 >/dev/null`)
    expect(box.sh('docker run --rm localhost:5010/priv/app3:1').trim()).toBe('app3')
    expect(box.read('/srv/gate/log')).toMatch(/^(token granted\n)+$/)
    // start-registry: false leaves the local registry as it was.
    expect(containerId('docker-gpu-setup-registry')).toBe(registry)
    // Masked for the runner, and in no argv, log line or summary.
    expect(run.stdout).toContain(`::add-mask::${TOKEN}`)
    const shown = run.stdout.replace(/^::add-mask::.*$/gm, '')
    expect(`${shown}${run.stderr}${run.summary}`).not.toContain(TOKEN)
    expect(run.commands.flat().join(' ')).not.toContain(TOKEN)
    const slug = gate.replace('http://', '').replace(':', '-')
    const envFile = `/etc/docker-gpu-setup/registry/env/docker-gpu-setup-cache-${slug}.env`
    expect(box.sh(`stat -c '%a %U' ${envFile}`).trim()).toBe('600 root')
    expect(run.commands.some(c => c.includes('--env-file') && c.includes(envFile))).toBe(true)
  }, 180_000)
})
