import * as core from '@actions/core'
import type {CommandRunner} from '../../exec/runner.js'
import type {PhaseContext} from '../pipeline.js'
import type {PushSettings} from './inputs.js'
import type {LocalImage, PushFacts} from './plan.js'
import {repoDigest} from './push-result.js'
import {endpointFor, manifestDigest} from './registry-api.js'

async function inspectLocal(
  runner: CommandRunner,
  source: string
): Promise<LocalImage | undefined> {
  const r = await runner.run(
    ['docker', 'image', 'inspect', '--format', '{{.Id}}\t{{json .RepoDigests}}\t{{.Size}}', source],
    {root: true, allowFailure: true}
  )
  if (r.exitCode !== 0) return undefined
  const [id, digests, size] = r.stdout.trim().split('\t')
  return {id, repoDigests: (JSON.parse(digests) as string[] | null) ?? [], size: Number(size)}
}

async function dockerAnswers(runner: CommandRunner): Promise<boolean> {
  const r = await runner.run(['docker', 'info', '--format', '{{.ID}}'], {
    root: true,
    allowFailure: true,
    timeoutSeconds: 10
  })
  return r.exitCode === 0
}

/**
 * Reads the local images and, for each target whose image already carries a digest for it, the
 * digest the registry holds (HTTP HEAD); changes nothing.
 */
export async function detectPush(ctx: PhaseContext<PushSettings>): Promise<PushFacts> {
  const {inputs, runner} = ctx
  const targets = inputs.images
  const locals = new Map<string, LocalImage>()
  const remote = new Map<string, string | undefined>()
  const dockerUp = targets.length > 0 && (await dockerAnswers(runner))
  if (!dockerUp) return {dockerUp, targets, locals, remote}
  for (const source of new Set(targets.map(t => t.source))) {
    const image = await inspectLocal(runner, source)
    if (image) locals.set(source, image)
  }
  // Only a target whose local image already carries a digest for it can be unchanged.
  await Promise.all(
    targets.map(async t => {
      const local = locals.get(t.source)
      if (!local || repoDigest(local.repoDigests, t) === undefined) return
      try {
        const endpoint = await endpointFor(inputs, t.registry)
        remote.set(t.target, await manifestDigest(endpoint, t.repository, t.tag))
      } catch (e) {
        core.debug(`Could not read ${t.target} from its registry: ${(e as Error).message}`)
      }
    })
  )
  return {dockerUp, targets, locals, remote}
}
