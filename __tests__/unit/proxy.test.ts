import {describe, expect, it} from '@jest/globals'
import {
  daemonProxyFragment,
  fullNoProxy,
  hasCredentials,
  proxyDropIn,
  proxyEnvFile,
  proxyEnvironment,
  withClientProxies,
  withoutCredentials,
  withoutCredentialsIn,
  type Proxies
} from '../../src/docker/proxy.js'
import {keptUnderSudo, wrapArgv} from '../../src/exec/runner.js'
import {planProxies, type ProxyFacts} from '../../src/phases/proxy/plan.js'

const P: Proxies = {
  http: 'http://proxy.corp:3128',
  https: 'http://proxy.corp:3128',
  noProxy: ['.corp', 'localhost', '127.0.0.0/8', '::1']
}

describe('the no-proxy list', () => {
  it('adds loopback, this host and the local registry after the user’s entries, each once', () => {
    expect(
      fullNoProxy(
        ['.corp', 'LOCALHOST'],
        {names: ['gpu-01'], addresses: ['127.0.0.1', '10.1.2.3', '::1', 'fe80::1', '2001:db8::5']},
        'registry.corp'
      )
    ).toEqual([
      '.corp',
      'LOCALHOST',
      '127.0.0.0/8',
      '::1',
      'gpu-01',
      '10.1.2.3',
      '2001:db8::5',
      'registry.corp'
    ])
  })

  it('takes an IPv6 registry host without its brackets, and no registry when none runs here', () => {
    expect(fullNoProxy([], {names: [], addresses: []}, '[fd00::5]')).toContain('fd00::5')
    expect(fullNoProxy([], {names: [], addresses: []}, undefined)).toEqual([
      'localhost',
      '127.0.0.0/8',
      '::1'
    ])
  })
})

describe('proxies in the formats that read them', () => {
  it('sets both cases of each variable, and only the proxies given', () => {
    expect(proxyEnvironment({http: 'http://p:1', noProxy: ['a', 'b']})).toEqual({
      http_proxy: 'http://p:1',
      HTTP_PROXY: 'http://p:1',
      no_proxy: 'a,b',
      NO_PROXY: 'a,b'
    })
  })

  it('gives daemon.json its proxies object', () => {
    expect(daemonProxyFragment(P).value).toEqual({
      proxies: {
        'http-proxy': 'http://proxy.corp:3128',
        'https-proxy': 'http://proxy.corp:3128',
        'no-proxy': '.corp,localhost,127.0.0.0/8,::1'
      }
    })
  })

  it('writes the values to an environment file, quoted for systemd, and a drop-in that names it', () => {
    const text = proxyEnvFile({
      http: 'http://u:50%25off@p:1',
      https: 'http://a"b\\c$d`e@p:2',
      noProxy: ['x']
    })
    expect(text).toBe(
      [
        '# Written by docker-gpu-setup from its http-proxy, https-proxy and no-proxy inputs.',
        'HTTP_PROXY="http://u:50%25off@p:1"',
        'HTTPS_PROXY="http://a\\"b\\\\c\\$d\\`e@p:2"',
        'NO_PROXY="x"',
        ''
      ].join('\n')
    )
    // The drop-in carries no value: `systemctl show docker` prints a unit's Environment= to anyone.
    const dropIn = proxyDropIn('/etc/docker-gpu-setup/docker-proxy.env')
    expect(dropIn).toContain('[Service]\nEnvironmentFile=/etc/docker-gpu-setup/docker-proxy.env\n')
    expect(dropIn).not.toContain('Environment=')
    expect(hasCredentials('http://u:p@proxy:1')).toBe(true)
    expect(hasCredentials('http://proxy:1')).toBe(false)
  })

  it('removes credentials for messages and comparisons', () => {
    expect(withoutCredentials('http://user:s3cret@proxy:3128')).toBe('http://proxy:3128')
    expect(withoutCredentials('http://token@proxy')).toBe('http://proxy')
    expect(
      withoutCredentialsIn(
        'Failed to establish tunnel to reg:443 via http://u%40corp:p%3Aw@proxy:3128/: HTTP/1.1 407, then https://a:b@other'
      )
    ).toBe(
      'Failed to establish tunnel to reg:443 via http://proxy:3128/: HTTP/1.1 407, then https://other'
    )
    expect(withoutCredentialsIn('user@host and mailto:x@y stay')).toBe(
      'user@host and mailto:x@y stay'
    )
    expect(withoutCredentials('http://proxy:3128')).toBe('http://proxy:3128')
  })
})

describe('the Docker client config', () => {
  it('gets proxies.default and keeps every other key (auths, helpers, other proxies)', () => {
    const config = {
      auths: {'ghcr.io': {auth: 'abc'}},
      credsStore: 'pass',
      proxies: {
        default: {ftpProxy: 'ftp://f', httpProxy: 'http://old:1'},
        'tcp://other:2376': {httpProxy: 'http://x'}
      }
    }
    const {config: merged, overwrites} = withClientProxies(config, P)
    expect(merged).toEqual({
      auths: {'ghcr.io': {auth: 'abc'}},
      credsStore: 'pass',
      proxies: {
        default: {
          ftpProxy: 'ftp://f',
          httpProxy: 'http://proxy.corp:3128',
          httpsProxy: 'http://proxy.corp:3128',
          noProxy: '.corp,localhost,127.0.0.0/8,::1'
        },
        'tcp://other:2376': {httpProxy: 'http://x'}
      }
    })
    expect(overwrites).toEqual([
      {key: 'proxies.default.httpProxy', from: 'http://old:1', to: 'http://proxy.corp:3128'}
    ])
  })
})

describe('planProxies', () => {
  const file = '/home/runner/.docker/config.json'
  const facts = (text?: string): ProxyFacts => ({
    files: [{path: file, text}],
    runnerEnvironment: {}
  })

  it('creates a missing config, and plans nothing once it holds the proxies', () => {
    const first = planProxies(facts(undefined), {proxies: P})
    expect(first.steps.map(s => s.description)).toEqual([
      `set proxies.default in ${file} (containers the job starts get http_proxy, https_proxy, no_proxy)`
    ])
    const again = planProxies(facts(first.writes[0].text), {proxies: P})
    expect(again.steps).toEqual([])
    expect(again.found).toContain(`${file} has them`)
    // Key order and indentation are not a change either.
    const reordered = JSON.stringify(JSON.parse(first.writes[0].text), null, 2)
    expect(planProxies(facts(reordered), {proxies: P}).steps).toEqual([])
  })

  it('names a value it replaces, without credentials', () => {
    const text = JSON.stringify({proxies: {default: {httpProxy: 'http://u:pw@old:1'}}})
    const plan = planProxies(facts(text), {proxies: P})
    expect(plan.warnings).toEqual([
      `${file}: proxies.default.httpProxy changes from http://old:1 to http://proxy.corp:3128 (http-proxy, https-proxy, no-proxy)`
    ])
    expect(JSON.parse(plan.writes[0].text)).toMatchObject({
      proxies: {default: {noProxy: expect.any(String)}}
    })
  })

  it('refuses a malformed config and leaves it alone', () => {
    expect(() => planProxies(facts('{"auths": '), {proxies: P})).toThrow(
      `${file} is not valid JSON`
    )
  })

  it('with no proxy input changes nothing, and says what the runner environment carries', () => {
    const plan = planProxies(
      {files: [], runnerEnvironment: {https_proxy: 'http://p:1'}},
      {proxies: undefined}
    )
    expect(plan.steps).toEqual([])
    expect(plan.found).toBe(
      "no proxy inputs; the runner environment's https_proxy reach the commands this action runs (under sudo too), nothing is configured"
    )
  })
})

describe('commands under sudo', () => {
  it('keep the proxy variables by name (--preserve-env), never by value', () => {
    const keep = keptUnderSudo({
      http_proxy: 'http://u:pw@p:1',
      NO_PROXY: 'x',
      HOME: '/h',
      https_proxy: ''
    })
    expect(keep).toEqual(['http_proxy', 'NO_PROXY'])
    const argv = wrapArgv(['apt-get', 'update'], {root: true, env: {A: '1'}}, false, keep)
    expect(argv).toEqual([
      'sudo',
      '-n',
      '--preserve-env=http_proxy,NO_PROXY',
      '--',
      'env',
      'A=1',
      'apt-get',
      'update'
    ])
    expect(argv.join(' ')).not.toContain('pw')
    // As root, or without a proxy, the argv is what it always was.
    expect(wrapArgv(['apt-get', 'update'], {root: true}, true, keep)).toEqual(['apt-get', 'update'])
    expect(wrapArgv(['apt-get', 'update'], {root: true}, false, [])).toEqual([
      'sudo',
      '-n',
      '--',
      'apt-get',
      'update'
    ])
  })
})
