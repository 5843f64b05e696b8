/** The proxy phase bound together: detect, plan, apply and verify. */
import type {Phase} from '../pipeline.js'
import {applyProxies, verifyProxies} from './apply.js'
import {detectProxies} from './detect.js'
import type {ProxySettings} from './inputs.js'
import {planProxies, type ProxyFacts, type ProxyPlan} from './plan.js'

/**
 * Proxy phase: the Docker client configs the job uses get the proxies, so the job's containers
 * get them. (The daemon's proxies are the daemon phase's, the caches' the registry phase's; apt
 * and every command under sudo get them from the run's environment.)
 */
export const proxyPhase: Phase<ProxySettings, ProxyFacts, ProxyPlan> = {
  name: 'Proxies',
  detect: ctx => detectProxies(ctx),
  plan: (facts, {inputs}) => planProxies(facts, inputs),
  apply: applyProxies,
  verify: verifyProxies
}
