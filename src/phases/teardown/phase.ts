/**
 * Teardown: not a stage of the main step's pipeline but what ends a job. The post step runs it for
 * its own job, and the GPU phase (handed it through phaseSettings) for an ended job whose lease it
 * takes over; both go through this binding.
 */
import {tearDownOrWarn} from './apply.js'
import {teardownOn} from './inputs.js'

/** Teardown's entry points: whether it is on, and the teardown itself (it never throws). */
export const teardownPhase = {
  name: 'Teardown',
  isOn: teardownOn,
  run: tearDownOrWarn
} as const
