import {describe, expect, it} from '@jest/globals'
import {planRegistry, type RegistryFacts} from '../../src/phases/registry/plan.js'
import {LABEL_MANAGED, LABEL_SPEC, registrySpec} from '../../src/phases/registry/spec.js'
import {ME as me, settingsWith, type RawOverrides} from './inputs-helper.js'

const paths = {'/debs': 'dir', '/c.pem': 'file', '/k.pem': 'file', '/reg.tar': 'file'} as const
const inputs = (o: RawOverrides = {}) => settingsWith(o, paths).registry

/** A host whose registry runs exactly as the default inputs ask. */
function ready(o: RawOverrides = {}, f: Partial<RegistryFacts> = {}): RegistryFacts {
  const spec = registrySpec(inputs(o), 'sha256:img', {})
  return {
    me,
    wanted: true,
    dockerUp: true,
    imageId: 'sha256:img',
    htpasswdOk: true,
    certOk: true,
    registry: {
      id: 'c1',
      running: true,
      labels: {[LABEL_MANAGED]: 'true', [LABEL_SPEC]: spec.hash},
      hostPort: 5000
    },
    fileHashes: {},
    dataDirs: {'/var/lib/docker-gpu-setup/registry': true},
    portHolders: {},
    ...f
  }
}
const steps = (f: RegistryFacts, o: RawOverrides = {}) =>
  planRegistry(f, inputs(o)).steps.map(s => s.description)

describe('planRegistry', () => {
  it('plans nothing when the registry runs as configured', () => {
    const plan = planRegistry(ready(), inputs())
    expect(plan.steps).toEqual([])
    expect(plan.registry).toBe('keep')
    expect(plan.found).toBe('registry container running, as configured')
  })

  it('starts a stopped one, and creates a missing one with its data folder', () => {
    const stopped = ready({}, {registry: {...ready().registry!, running: false}})
    expect(steps(stopped)).toEqual([
      'start the registry container (127.0.0.1:5000, data kept in /var/lib/docker-gpu-setup/registry)'
    ])
    expect(
      steps(
        ready({}, {registry: undefined, dataDirs: {'/var/lib/docker-gpu-setup/registry': false}})
      )
    ).toEqual([
      'create /var/lib/docker-gpu-setup/registry',
      'create the registry container (127.0.0.1:5000, data kept in /var/lib/docker-gpu-setup/registry)'
    ])
  })

  it('recreates on a changed spec or new files, keeping the data', () => {
    expect(planRegistry(ready(), inputs({'registry-bind': '0.0.0.0'})).registry).toBe('recreate')
    const auth = planRegistry(
      ready({}, {htpasswdOk: false}),
      inputs({'registry-htpasswd': 'ci:pw'})
    )
    expect(auth.registry).toBe('recreate')
    expect(auth.writeHtpasswd).toBe(true)
    expect(auth.steps[0].description).toBe(
      'write /etc/docker-gpu-setup/registry/htpasswd (bcrypt) for ci'
    )
  })

  it('closes an htpasswd file others can read (0600) without rewriting it or touching the registry', () => {
    const open = planRegistry(
      ready({'registry-htpasswd': 'ci:pw'}, {htpasswdOpen: true}),
      inputs({'registry-htpasswd': 'ci:pw'})
    )
    expect(open.closeHtpasswd).toBe(true)
    expect(open.writeHtpasswd).toBe(false)
    expect(open.registry).toBe('keep')
    expect(open.steps.map(s => s.description)).toEqual([
      'make /etc/docker-gpu-setup/registry/htpasswd readable by root alone (0600)'
    ])
    const rewritten = planRegistry(
      ready({}, {htpasswdOk: false, htpasswdOpen: true}),
      inputs({'registry-htpasswd': 'ci:pw'})
    )
    expect(rewritten.closeHtpasswd).toBe(false)
  })

  it('loads a missing image from the archive, pulls it otherwise, never when offline', () => {
    expect(
      planRegistry(
        ready({}, {imageId: undefined, registry: undefined}),
        inputs({'registry-image-archive': '/reg.tar'})
      ).image
    ).toBe('load')
    expect(planRegistry(ready({}, {imageId: undefined, registry: undefined}), inputs()).image).toBe(
      'pull'
    )
    expect(() =>
      planRegistry(
        ready({}, {imageId: undefined, registry: undefined}),
        inputs({'docker-source': 'offline', 'offline-debs': '/debs'})
      )
    ).toThrow(
      'registry-image registry:3 is not on this host, and offline-debs means nothing is pulled'
    )
  })

  it('refuses a port another process holds, naming it', () => {
    expect(() =>
      planRegistry(
        ready({}, {registry: undefined, portHolders: {5000: 'process "nginx",pid=7,fd=6'}}),
        inputs()
      )
    ).toThrow(
      'Port 5000 is taken by process "nginx",pid=7,fd=6: the registry cannot publish on it.'
    )
  })

  it('refuses a container of that name it did not make', () => {
    expect(() =>
      planRegistry(ready({}, {registry: {id: 'x', running: true, labels: {}}}), inputs())
    ).toThrow('exists that docker-gpu-setup did not create')
  })

  it('warns that a plain-HTTP registry on a host address needs insecure-registries elsewhere', () => {
    const o = {registry: '10.1.2.3:5000'}
    const plan = planRegistry(ready(o, {registry: undefined}), inputs(o))
    expect(plan.warnings[0]).toContain('10.1.2.3:5000 is served over plain HTTP')
    expect(plan.steps.at(-1)?.description).toContain('0.0.0.0:5000')
  })

  it('does nothing for a registry elsewhere, and says why', () => {
    const plan = planRegistry(
      {...ready(), wanted: false},
      inputs({registry: 'registry.example.com'})
    )
    expect(plan.steps).toEqual([])
    expect(plan.found).toBe('not started here (registry registry.example.com is not this host)')
  })

  describe('a step that does not say how its registry runs', () => {
    // The registry as an earlier step started it: basic auth and TLS.
    const secured = {
      'registry-htpasswd': 'ci:pw',
      'registry-tls-cert': '/c.pem',
      'registry-tls-key': '/k.pem'
    }
    const running = ready(secured, {
      dataDirs: {'/var/lib/docker-gpu-setup/registry': false},
      registry: {...ready(secured).registry!, hostPort: 5000}
    })

    it('keeps the registry running on its port as it is, whatever its settings', () => {
      const plan = planRegistry(running, inputs({images: 'app:1'}))
      expect(plan.steps).toEqual([])
      expect(plan.registry).toBeUndefined()
      expect(plan.kept).toBe('the running registry container docker-gpu-setup-registry')
      expect(plan.found).toBe(
        'localhost:5000 is served by the running registry container docker-gpu-setup-registry: kept as it is (this step sets none of its inputs)'
      )
    })

    it('never takes another process on that port for its registry: it names it', () => {
      expect(() =>
        planRegistry(
          ready({}, {registry: undefined, portHolders: {5000: 'process "nginx",pid=7,fd=6'}}),
          inputs({images: 'app:1'})
        )
      ).toThrow('Port 5000 is taken by process "nginx",pid=7,fd=6')
    })

    it('still runs one where none serves the port', () => {
      expect(planRegistry(ready({}, {registry: undefined}), inputs()).registry).toBe('create')
    })

    it('starts a stopped one as it is, never recreating it without its auth and TLS', () => {
      const stopped = {...running, registry: {...running.registry!, running: false}}
      const plan = planRegistry(stopped, inputs())
      expect(plan.registry).toBeUndefined()
      expect(plan.startKept).toBe(true)
      expect(plan.steps.map(s => s.description)).toEqual([
        'start the stopped registry container docker-gpu-setup-registry as it is (its settings untouched)'
      ])
      expect(planRegistry(running, inputs()).startKept).toBe(false)
    })

    it.each([
      ['start-registry: true', {'start-registry': 'true'}],
      ['a container input', {'registry-data': '/srv/other'}]
    ])('is not the case with %s: the step makes the registry it asks for', (_what, o) => {
      expect(planRegistry(running, inputs(o)).registry).toBe('recreate')
    })
  })
})
