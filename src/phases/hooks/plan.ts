/**
 * The runner's job hooks (pure): the scripts this action installs, the lines of the runner's
 * `.env` that name them, and the plan that installs or removes them. The runner reads
 * ACTIONS_RUNNER_HOOK_JOB_STARTED and _COMPLETED from its environment, which `.env` sets when the
 * runner starts; each runs as a step of every job (the started one before the job's containers).
 */
import {HostError} from '../../errors.js'
import {pathHash} from '../../system/runner-label.js'
import type {PhasePlan} from '../pipeline.js'
import type {HookConfig, HookInputs} from './inputs.js'
import {LEASE_RUNTIME_FILES, leaseRuntimeScript} from '../../docker/lease-runtime.js'

/** Where the hooks live: root's, not the runner user's (the scripts, the bundle, its settings). */
export const HOOK_DIR = '/usr/local/lib/docker-gpu-setup'

/** The hook files of one runner (the scripts, the bundle, its settings). */
export interface HookFiles {
  dir: string
  started: string
  completed: string
  bundle: string
  packageJson: string
  config: string
}

/**
 * The hook files of the runner in `folder`: a folder of its own under HOOK_DIR, named by the hash
 * of the runner's path, as each runner's `.env` names its own (one runner's install or remove
 * never touches another's).
 */
export function hookFilesOf(folder: string): HookFiles {
  const dir = `${HOOK_DIR}/runner-${pathHash(folder).slice(0, 16)}`
  return {
    dir,
    started: `${dir}/job-started.sh`,
    completed: `${dir}/job-completed.sh`,
    bundle: `${dir}/index.js`,
    packageJson: `${dir}/package.json`,
    config: `${dir}/hooks.json`
  }
}

/** The files of hookFilesOf, without the folder. */
export const fileList = (files: HookFiles): string[] => [
  files.bundle,
  files.packageJson,
  files.config,
  files.started,
  files.completed
]
const VARS = {
  started: 'ACTIONS_RUNNER_HOOK_JOB_STARTED',
  completed: 'ACTIONS_RUNNER_HOOK_JOB_COMPLETED'
} as const

/** A word for bash, single-quoted. */
const quoted = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

/**
 * A hook script: runs the installed bundle with the runner's node as `job-started` or
 * `job-completed` (the bundle reads its settings beside itself).
 */
export function hookScript(kind: 'started' | 'completed', node: string, bundle: string): string {
  return [
    '#!/bin/bash',
    `# docker-gpu-setup (runner-hooks: install): the runner's job-${kind} hook.`,
    `exec ${quoted(node)} ${quoted(bundle)} job-${kind}`,
    ''
  ].join('\n')
}

/** The value a `.env` line gives a variable, or undefined. */
function envValue(text: string, name: string): string | undefined {
  const line = text.split('\n').find(l => l.startsWith(`${name}=`))
  return line?.slice(name.length + 1).trim()
}

/** `.env` with the two hook lines set to the runner's scripts; every other line kept. */
export function envWithHooks(text: string, files: HookFiles): string {
  const kept = text
    .split('\n')
    .filter(l => !l.startsWith(`${VARS.started}=`) && !l.startsWith(`${VARS.completed}=`))
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop()
  return [
    ...kept,
    `${VARS.started}=${files.started}`,
    `${VARS.completed}=${files.completed}`,
    ''
  ].join('\n')
}

/** `.env` without this action's hook lines (an administrator's own hooks stay). */
export function envWithoutHooks(text: string, files: HookFiles): string {
  return text
    .split('\n')
    .filter(
      l => l !== `${VARS.started}=${files.started}` && l !== `${VARS.completed}=${files.completed}`
    )
    .join('\n')
}

/** What the hooks phase found. */
export interface HookFacts {
  /** The runner's folder (where .runner and .env are); undefined when it was not found. */
  folder?: string
  /** Its .env ('' when there is none). */
  env: string
  /** The runner's installed hook files' contents (hookFilesOf its folder), by path. */
  installed: Readonly<Record<string, string | undefined>>
  /** The node the runner runs actions with, and the bundle to install. */
  node: string
  bundle: string
  /** The gpu-lease runtime's node copy is there, root's, and the size of `node`. */
  runtimeNode?: boolean
}

/** The plan: the files to write or remove, and the .env to write. */
export interface HookPlan extends PhasePlan {
  facts: HookFacts
  /** The runner's hook files (where its folder was found). */
  files?: HookFiles
  write: Record<string, string>
  /** Files to remove; then their folder, when emptied. */
  remove: string[]
  env?: string
  /** Copy the runner's node for the gpu-lease runtime. */
  copyNode?: boolean
}

/** The gpu-lease runtime's text files (shared by the host's runners: install writes, remove keeps). */
export function leaseRuntimeFiles(facts: HookFacts): Record<string, string> {
  return {
    [LEASE_RUNTIME_FILES.bundle]: facts.bundle,
    [LEASE_RUNTIME_FILES.packageJson]: '{\n  "type": "module"\n}\n',
    [LEASE_RUNTIME_FILES.script]: leaseRuntimeScript()
  }
}

/** The files the runner's hooks need, as they should be. */
export function hookFiles(
  facts: HookFacts,
  files: HookFiles,
  config: HookConfig
): Record<string, string> {
  return {
    [files.bundle]: facts.bundle,
    [files.packageJson]: '{\n  "type": "module"\n}\n',
    [files.config]: `${JSON.stringify(config)}\n`,
    [files.started]: hookScript('started', facts.node, files.bundle),
    [files.completed]: hookScript('completed', facts.node, files.bundle)
  }
}

/** Installs or removes the hooks (pure); an administrator's own hook is never replaced. */
export function planHooks(facts: HookFacts, inputs: HookInputs & {config: HookConfig}): HookPlan {
  const none: HookPlan = {
    found: 'runner-hooks: none',
    steps: [],
    warnings: [],
    facts,
    write: {},
    remove: []
  }
  if (inputs.runnerHooks === 'none') return none
  if (facts.folder === undefined) {
    throw new HostError(
      `runner-hooks: ${inputs.runnerHooks}, but the runner's folder (with its .runner file) was not found above this job's Runner.Worker.`
    )
  }
  const envFile = `${facts.folder}/.env`
  const files = hookFilesOf(facts.folder)
  const mine = {...none, found: `runner ${facts.folder}`, files}
  if (inputs.runnerHooks === 'remove') {
    const env = envWithoutHooks(facts.env, files)
    const remove = fileList(files).filter(f => facts.installed[f] !== undefined)
    const steps = [
      ...(env !== facts.env ? [{description: `remove the job hooks from ${envFile}`}] : []),
      ...remove.map(f => ({description: `remove ${f}`}))
    ]
    return {...mine, steps, remove, env: env !== facts.env ? env : undefined}
  }
  for (const kind of ['started', 'completed'] as const) {
    const set = envValue(facts.env, VARS[kind])
    if (set !== undefined && set !== files[kind]) {
      throw new HostError(
        `runner-hooks: install, but ${envFile} already sets ${VARS[kind]}=${set}: the runner runs one hook per event. Remove that line, or call ${files[kind]} from that hook.`
      )
    }
  }
  const want = {...hookFiles(facts, files, inputs.config), ...leaseRuntimeFiles(facts)}
  const write = Object.fromEntries(
    Object.entries(want).filter(([f, text]) => facts.installed[f] !== text)
  )
  const env = envWithHooks(facts.env, files)
  const copyNode = facts.runtimeNode !== true
  const steps = [
    ...(copyNode ? [{description: `copy ${facts.node} to ${LEASE_RUNTIME_FILES.node}`}] : []),
    ...Object.keys(write).map(f => ({description: `write ${f}`})),
    ...(env !== facts.env
      ? [{description: `set ${VARS.started} and ${VARS.completed} in ${envFile}`}]
      : [])
  ]
  return {...mine, steps, write, env: env !== facts.env ? env : undefined, copyNode}
}
