/**
 * The inputs that keep a GPU host healthy between runs (the health gate, the driver hold): their
 * action.yml defaults, their type, and their parser (pure).
 */
import {bool, int, oneOf, optional, type RawInputs} from '../../input-fields.js'
import type {HealthMode} from './health.js'

/** gpu-health, gpu-count-expected and hold-nvidia-driver with their action.yml defaults. */
export const GPU_HEALTH_INPUTS = {
  'gpu-health': 'fail',
  'gpu-count-expected': '',
  'hold-nvidia-driver': 'true'
} as const

/** What the health gate's inputs say. */
export interface GpuHealthInputs {
  mode: HealthMode
  /** How many GPUs this host should show; undefined when not set. */
  countExpected?: number
  /** Keep unattended upgrades off the NVIDIA driver and toolkit packages. */
  holdDriver: boolean
  /**
   * Teardown is on: an ended job's leftover processes are its to end before the GPU is handed on,
   * not a health problem (set by the composition, not an input).
   */
  teardown?: boolean
}

/** Validates gpu-health, gpu-count-expected and hold-nvidia-driver (pure); throws InputError. */
export function parseGpuHealthInputs(
  raw: RawInputs<keyof typeof GPU_HEALTH_INPUTS>
): GpuHealthInputs {
  const mode = oneOf(raw, 'gpu-health', ['fail', 'warn', 'off'] as const)
  const expected = optional(raw, 'gpu-count-expected')
  return {
    mode,
    countExpected: expected === undefined ? undefined : int(raw, 'gpu-count-expected', 1, 64),
    holdDriver: bool(raw, 'hold-nvidia-driver')
  }
}
