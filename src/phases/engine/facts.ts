/** What the summary shows for the engine phase (pure): the engine's version and package, and its service. */
import type {ServiceManager} from '../../system/service.js'
import type {Fact} from '../pipeline.js'

/** The engine as detection or verification saw it. */
export interface EngineState {
  /** dockerd is installed. */
  installed: boolean
  /** The server's version when it answers, else the package's. */
  version?: string
  /** The package that provides it: docker-ce, docker.io, snap, or "not from apt". */
  source: string
  running: boolean
  manager: ServiceManager
  /** systemd hosts: enabled at boot. */
  enabled?: boolean
}

/** The engine's facts: "Docker 27.3.1 (docker-ce)", "service systemd". */
export function engineFacts(s: EngineState): Fact[] {
  if (!s.installed) return [{label: 'Docker Engine', value: null}]
  const service: Fact =
    s.manager === 'direct'
      ? {label: 'service', value: 'dockerd', note: 'no init system: run by this action'}
      : {
          label: 'service',
          value: s.manager,
          ...(s.enabled === false ? {note: 'not enabled at boot'} : {})
        }
  return [
    {
      label: 'Docker',
      value: s.version ?? true,
      note: s.running ? s.source : `${s.source}, not running`
    },
    service
  ]
}
