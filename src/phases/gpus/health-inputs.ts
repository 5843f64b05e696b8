/** The GPU health gate's inputs: their action.yml defaults, their type, and their parser (pure). */
import {int, oneOf, optional, type RawInputs} from '../../input-fields.js'
import type {HealthMode} from './health.js'

/** gpu-health and gpu-count-expected with their action.yml defaults. */
export const GPU_HEALTH_INPUTS = {
  'gpu-health': 'fail',
  'gpu-count-expected': ''
} as const

/** What the health gate's inputs say. */
export interface GpuHealthInputs {
  mode: HealthMode
  /** How many GPUs this host should show; undefined when not set. */
  countExpected?: number
}

/** Validates gpu-health and gpu-count-expected (pure); throws InputError. */
export function parseGpuHealthInputs(
  raw: RawInputs<keyof typeof GPU_HEALTH_INPUTS>
): GpuHealthInputs {
  const mode = oneOf(raw, 'gpu-health', ['fail', 'warn', 'off'] as const)
  const expected = optional(raw, 'gpu-count-expected')
  return {
    mode,
    countExpected: expected === undefined ? undefined : int(raw, 'gpu-count-expected', 1, 64)
  }
}
