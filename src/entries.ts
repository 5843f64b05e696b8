/**
 * The action's entries (pure data): the whole-host action and its sub-actions (push, registry,
 * gpus), one bundle. Each says which inputs its action.yml declares, which outputs it sets and
 * which phases it runs; scripts/sub-actions.mjs writes each sub-action's action.yml from this and
 * the root action.yml, and the bundle picks its entry by the file the runner started.
 */
import type {EntryInputs, InputName} from './inputs.js'
import type {OutputName} from './outputs.js'

/** The phases, in pipeline order. */
export const PHASES = [
  'health',
  'gpus',
  'proxy',
  'engine',
  'daemon',
  'hold',
  'isolation',
  'hooks',
  'registry',
  'disk',
  'push'
] as const
/** One phase of the pipeline. */
export type PhaseKey = (typeof PHASES)[number]

/** One entry: the root action.yml or a sub-action's. */
export interface Entry extends EntryInputs {
  /** Its bundle file (dist/<file>.js) and, for a sub-action, the folder of its action.yml. */
  file: string
  /** The action's name and description in its action.yml (the root's are its own). */
  title: string
  description: string
  phases: readonly PhaseKey[]
  /** The outputs its action.yml declares and the step sets; 'all' for the root. */
  outputs: readonly OutputName[] | 'all'
}

/** What every entry takes: a dry run, and the step summary. */
const RUN: readonly InputName[] = ['dry-run', 'summary']

/** The root action: every input, every phase. */
export const SETUP: Entry = {
  file: 'index',
  title: 'docker-gpu-setup',
  description: '',
  inputs: 'all',
  defaults: {},
  phases: PHASES,
  outputs: 'all'
}

/** Tags and pushes images to a registry; never installs, changes daemon.json or touches a registry. */
export const PUSH: Entry = {
  file: 'push',
  title: 'docker-gpu-setup/push',
  description:
    "Tag and push the job's local images to a registry (login, retries, digests as outputs, a step summary). Never installs anything, changes daemon.json, or starts, stops or recreates a registry.",
  inputs: [
    'registry',
    'images',
    'tags',
    'username',
    'password',
    'push-concurrency',
    'push-retries',
    'push-method',
    'push-compression',
    ...RUN
  ],
  defaults: {},
  phases: ['push'],
  outputs: ['registry', 'images', 'digests']
}

/**
 * The local registry, its Docker Hub mirror and the pull-through caches, with what they add to
 * daemon.json (registry-mirrors, insecure-registries); the GPU settings of daemon.json are left alone.
 */
export const REGISTRY: Entry = {
  file: 'registry',
  title: 'docker-gpu-setup/registry',
  description:
    "Run the local registry (auth, TLS), its Docker Hub mirror and pull-through caches of other registries on this host, and add them to daemon.json's registry-mirrors and insecure-registries. Never installs anything or pushes.",
  inputs: [
    'registry',
    'start-registry',
    'registry-image',
    'registry-image-archive',
    'registry-bind',
    'registry-data',
    'registry-htpasswd',
    'registry-tls-cert',
    'registry-tls-key',
    'registry-mirror',
    'registry-mirror-port',
    'registry-caches',
    'registry-cache-port',
    'registry-cache-credentials',
    'insecure-registry',
    'cleanup',
    ...RUN
  ],
  // This entry is asked for a registry; the daemon phase only merges the registry's keys.
  defaults: {'start-registry': 'true', 'gpu-runtime': 'none', 'gpu-check': 'false'},
  phases: ['daemon', 'registry'],
  outputs: ['registry', 'registry-started', 'caches', 'daemon-config-changed', 'daemon-change']
}

/** Leases GPUs to this job until its post step. */
export const GPUS: Entry = {
  file: 'gpus',
  title: 'docker-gpu-setup/gpus',
  description:
    'Lease GPUs of a shared host to this job until its post step releases them; a job that finds too few free waits. Never installs anything or changes daemon.json.',
  inputs: ['gpus', 'gpu-wait', 'gpu-health', 'gpu-count-expected', 'teardown', ...RUN],
  defaults: {gpus: '1'},
  phases: ['health', 'gpus'],
  outputs: [
    'gpu-uuids',
    'gpu-indexes',
    'docker-gpus',
    'docker-gpu-options',
    'cdi-devices',
    'gpu-health'
  ]
}

/** Every entry; the sub-actions after the root. */
export const ENTRIES: readonly Entry[] = [SETUP, PUSH, REGISTRY, GPUS]

/** The entry whose bundle file the runner started (`node …/dist/push.js`); the root for any other. */
export function entryForScript(script: string | undefined): Entry {
  const file = /([^/\\]+)\.m?js$/.exec(script ?? '')?.[1]
  return ENTRIES.find(e => e.file === file) ?? SETUP
}
