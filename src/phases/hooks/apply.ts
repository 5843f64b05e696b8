/** Writes or removes the hook files (root's) and the runner's .env (the runner user's, kept so). */
import * as path from 'node:path'
import {removeFile, writeFileAtomic, writeOwnedFile} from '../../system/files.js'
import type {PhaseContext} from '../pipeline.js'
import type {HookSettings} from './inputs.js'
import {LEASE_RUNTIME_FILES} from '../../docker/lease-runtime.js'
import type {HookPlan} from './plan.js'

/** Applies the plan; the runner reads .env only when it starts: the admin is told to restart it. */
export async function applyHooks(plan: HookPlan, ctx: PhaseContext<HookSettings>): Promise<void> {
  const scripts = [plan.files?.started, plan.files?.completed, LEASE_RUNTIME_FILES.script]
  if (plan.copyNode) {
    // A copy, root's: what dockerd runs as root must not be a file the runner's user can replace.
    const dir = LEASE_RUNTIME_FILES.dir
    await ctx.runner.run(['install', '-d', '-m', '0755', '-o', 'root', '-g', 'root', dir], {
      root: true
    })
    const tmp = `${LEASE_RUNTIME_FILES.node}.tmp-${process.pid}`
    await ctx.runner.run(
      ['install', '-p', '-m', '0755', '-o', 'root', '-g', 'root', plan.facts.node, tmp],
      {root: true}
    )
    await ctx.runner.run(['mv', '-f', '--', tmp, LEASE_RUNTIME_FILES.node], {root: true})
  }
  for (const [file, text] of Object.entries(plan.write)) {
    await writeFileAtomic(
      ctx.runner,
      file,
      text,
      scripts.includes(file) ? 0o755 : 0o644,
      ctx.host.tempDir
    )
  }
  for (const file of plan.remove) await removeFile(ctx.runner, file)
  if (plan.remove.length > 0 && plan.files) {
    // Its folder was this runner's alone: gone once empty (rmdir leaves a folder with more in it).
    await ctx.runner.run(['rmdir', '--', plan.files.dir], {root: true, allowFailure: true})
  }
  const folder = plan.facts.folder
  if (plan.env !== undefined && folder !== undefined) {
    await writeOwnedFile(path.join(folder, '.env'), plan.env, 0o644)
    const restart = `restart the runner (${folder}/svc.sh stop && ${folder}/svc.sh start, or its service) so that it reads it`
    ctx.warn(
      ctx.inputs.runnerHooks === 'remove'
        ? `runner-hooks: remove: ${path.join(folder, '.env')} changed; ${restart}: until then the job hooks it read fail, their files being gone.`
        : `runner-hooks: install: ${path.join(folder, '.env')} changed; ${restart}.`
    )
  }
}

/** Says where the hooks now stand. */
export function verifyHooks(plan: HookPlan, ctx: PhaseContext<HookSettings>): Promise<string> {
  const done = ctx.inputs.runnerHooks === 'remove' ? 'removed' : 'installed'
  return Promise.resolve(`job hooks of the runner in ${plan.facts.folder} ${done}`)
}
