/** What the summary shows for the registry phase (pure): where images go, and where a local registry keeps them. */
import type {Fact} from '../pipeline.js'
import type {RegistrySettings} from './inputs.js'

/** The local registry container as detection or verification saw it. */
export type RegistryState = 'not wanted' | 'docker down' | 'absent' | 'stopped' | 'running'

/** The registry's facts: "registry localhost:5000", "data /var/lib/…", the mirror's address. */
export function registryFacts(
  inputs: Pick<
    RegistrySettings,
    'registry' | 'registryData' | 'registryMirror' | 'registryMirrorPort' | 'startRegistry'
  >,
  state: RegistryState
): Fact[] {
  if (state === 'not wanted') {
    const note =
      inputs.startRegistry === 'false'
        ? 'not started here: start-registry is false'
        : 'not on this host'
    return [{label: 'registry', value: inputs.registry.text, note}]
  }
  const notes: Record<Exclude<RegistryState, 'not wanted'>, string | undefined> = {
    'docker down': 'Docker is not running yet',
    absent: 'no container yet',
    stopped: 'container stopped',
    running: undefined
  }
  const note = notes[state]
  return [
    {label: 'registry', value: inputs.registry.text, ...(note ? {note} : {})},
    {label: 'data', value: inputs.registryData},
    ...(inputs.registryMirror !== false
      ? [{label: 'mirror', value: `127.0.0.1:${inputs.registryMirrorPort}`}]
      : [])
  ]
}
