/** The engine phase bound together: detect, plan (the apt URL from the host's distribution), preview, apply and verify. */
import {defaultDockerAptUrl} from '../../system/os-release.js'
import type {Phase} from '../pipeline.js'
import {applyEngine, previewEngine, verifyEngine} from './apply.js'
import {detectEngine} from './detect.js'
import type {EngineInputs} from './inputs.js'
import {dockerUsers, planEngine, type EngineFacts, type EnginePlan} from './plan.js'

/** Engine phase: installs Docker per install-docker/docker-source, starts it, adds users to the docker group. */
export const enginePhase: Phase<EngineInputs, EngineFacts, EnginePlan> = {
  name: 'Docker engine',
  detect: detectEngine,
  plan: (facts, {inputs, host}) =>
    planEngine(
      facts,
      inputs,
      inputs.dockerAptUrl ?? defaultDockerAptUrl(host.os),
      dockerUsers(inputs, host.user)
    ),
  preview: previewEngine,
  apply: applyEngine,
  verify: verifyEngine
}
