/** The GPU lease inputs: their action.yml defaults, their type, and their parser (pure). */
import type {CommandRunner} from '../../exec/runner.js'
import {fail, int, splitList, type RawInputs} from '../../input-fields.js'
import type {TeardownResult} from '../../outputs.js'

/** gpus and gpu-wait with their action.yml defaults. */
export const GPU_INPUTS = {
  gpus: '',
  'gpu-wait': '900'
} as const

type Raw = RawInputs<keyof typeof GPU_INPUTS>

/** One GPU named in a `gpus` list: by UUID (as nvidia-smi prints it) or by index. */
export type GpuId = {uuid: string} | {index: number}

/** What `gpus` asks for: nothing (no lease), every GPU, a number of them, or these ones. */
export type GpuRequest =
  {kind: 'none'} | {kind: 'all'} | {kind: 'count'; count: number} | {kind: 'list'; gpus: GpuId[]}

/** What the GPU lease inputs say. */
export interface GpuInputs {
  gpus: GpuRequest
  /** Seconds to wait for enough free GPUs before failing. */
  gpuWait: number
}

/** An ended job whose leases are to be taken over: its worker and every GPU it leased. */
export interface EndedJob {
  pid: number
  start: string
  gpus: string[]
  dead: true
  /** GPU UUID → the live job that holds it, in words. */
  otherLeases: ReadonlyMap<string, string>
}

/** Removes an ended job's leftovers; says which of its GPUs are idle again, and what holds the rest. */
export type EndedJobTeardown = (
  runner: CommandRunner,
  job: EndedJob
) => Promise<{result: TeardownResult; idle: string[]; busy: {uuid: string; why: string}[]}>

/** What the GPU phase reads: its inputs, and the teardown of ended jobs when `teardown` is on. */
export interface GpuSettings extends GpuInputs {
  tearDown?: EndedJobTeardown
}

/** The most GPUs one request may name: more than any single host carries. */
const MAX_GPUS = 64
const UUID = /^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const ACCEPTED = `use all, a count from 1 to ${MAX_GPUS}, or a list of GPU UUIDs (GPU-…) or indexes (0,1; one index alone: 2,)`

function gpuId(text: string, whole: string): GpuId {
  if (UUID.test(text)) return {uuid: text}
  if (/^\d{1,3}$/.test(text)) return {index: Number(text)}
  if (/^MIG-/i.test(text)) fail('gpus', whole, `${text}: MIG devices are not leased; ${ACCEPTED}`)
  return fail('gpus', whole, `${text} is neither a GPU UUID nor an index: ${ACCEPTED}`)
}

function key(id: GpuId): string {
  return 'uuid' in id ? id.uuid.toLowerCase() : `#${id.index}`
}

/** The `gpus` request; a lone number is a count, a list (a comma, or several lines) names GPUs. */
function request(raw: Raw): GpuRequest {
  const value = raw.gpus.trim()
  if (value === '') return {kind: 'none'}
  if (value.toLowerCase() === 'all') return {kind: 'all'}
  if (/^\d+$/.test(value)) {
    const count = Number(value)
    if (count < 1 || count > MAX_GPUS) fail('gpus', value, ACCEPTED)
    return {kind: 'count', count}
  }
  const items = splitList(value)
  if (items.length === 0) fail('gpus', value, ACCEPTED)
  const gpus = items.map(i => gpuId(i.value, value))
  const seen = new Set<string>()
  for (const id of gpus) {
    if (seen.has(key(id)))
      fail('gpus', value, `${'uuid' in id ? id.uuid : id.index} is named twice`)
    seen.add(key(id))
  }
  return {kind: 'list', gpus}
}

/** Validates gpus and gpu-wait (pure); throws InputError. */
export function parseGpuInputs(raw: Raw): GpuInputs {
  return {gpus: request(raw), gpuWait: int(raw, 'gpu-wait', 0, 86_400)}
}

/** The request as the `gpus` input would give it (pure); parseGpuInputs reads it back the same. */
export function gpusText(r: GpuRequest): string {
  if (r.kind === 'none') return ''
  if (r.kind === 'all') return 'all'
  if (r.kind === 'count') return String(r.count)
  return r.gpus.map(id => ('uuid' in id ? id.uuid : String(id.index))).join(',') + ','
}
