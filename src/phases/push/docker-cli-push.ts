/** The docker CLI push strategy: `docker tag` and `docker push` per target, the digest it prints checked in the registry. */
import {errorMessage, tailLines} from '../../errors.js'
import {isTransient, retrying} from '../../registry-client/retry.js'
import {tagImage} from '../../system/docker-images.js'
import type {PushTarget} from './image-list.js'
import type {PushPlan} from './plan.js'
import {failed, parsePushOutput, type PushResult} from './push-result.js'
import {confirm} from './registries.js'
import type {PushContext, PushStrategy} from './strategy.js'

/** A failed `docker push`: its last lines, and whether its words say another try may succeed. */
class DockerPushError extends Error {
  constructor(
    message: string,
    readonly transient: boolean
  ) {
    super(message)
  }
}

/** Tags and pushes one target with `docker push`, retrying transient failures; then checks the digest. */
async function pushOne(
  ctx: PushContext,
  p: PushPlan,
  t: PushTarget,
  config: string | undefined
): Promise<PushResult> {
  const {runner, inputs} = ctx
  const env = config ? {DOCKER_CONFIG: config} : undefined
  try {
    await tagImage(runner, p.facts.engine, t.source, t.target)
  } catch (e) {
    return failed(t, errorMessage(e), 1)
  }
  const pushed = await retrying(inputs.pushRetries, [t.target], async () => {
    const r = await runner.run(['docker', 'push', t.target], {root: true, env, allowFailure: true})
    const out = `${r.stdout}\n${r.stderr}`
    if (r.exitCode !== 0) {
      throw new DockerPushError(tailLines(r.stderr || r.stdout, 3), isTransient(out))
    }
    return parsePushOutput(out)
  })
  if (!pushed.ok) return failed(t, errorMessage(pushed.error), pushed.attempts)
  const {value, attempts} = pushed
  if (!value) return failed(t, 'docker push printed no digest', attempts)
  try {
    const size = await confirm(p.facts.registries, t, value.digest)
    const {source, target} = t
    return {source, target, digest: value.digest, size, status: 'pushed', attempts}
  } catch (e) {
    return failed(t, errorMessage(e), attempts)
  }
}

/** Pushes every target of the plan with the docker CLI, one per worker of the pool. */
export const dockerCliPush: PushStrategy = (ctx, p, pool, config) =>
  pool(p.todo, async t => [await pushOne(ctx, p, t, config)])
