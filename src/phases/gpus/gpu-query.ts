/**
 * GPUs as nvidia-smi's script interface reports them (pure): `--query-gpu` and
 * `--query-compute-apps` with `--format=csv,noheader,nounits`, never the human table.
 */

/** Arguments of the GPU query: one line per GPU. */
export const QUERY_GPUS = [
  '--query-gpu=index,uuid,name,memory.used,memory.total',
  '--format=csv,noheader,nounits'
]
/** Arguments of the compute-process query: one line per process on a GPU. */
export const QUERY_APPS = [
  '--query-compute-apps=gpu_uuid,pid,used_memory',
  '--format=csv,noheader,nounits'
]

/** One GPU and how busy it is. */
export interface GpuDevice {
  index: number
  /** As nvidia-smi prints it (GPU-…): docker's --gpus and CUDA take it so. */
  uuid: string
  name: string
  /** MiB; 0 when the driver does not say ([N/A]). */
  memoryUsed: number
  memoryTotal: number
  /** Compute processes running on it now. */
  processes: number
}

/** A number field; [N/A], [Not Supported] and blanks read as 0. */
function num(text: string | undefined): number {
  const n = Number(text?.trim())
  return Number.isFinite(n) ? n : 0
}

/** The fields of one CSV line (nvidia-smi separates them with ", " and does not quote). */
function fields(line: string): string[] {
  return line.split(',').map(f => f.trim())
}

/** Parses the --query-gpu lines; a line that is not `index, uuid, name, used, total` is skipped. */
export function parseGpuQuery(text: string): Omit<GpuDevice, 'processes'>[] {
  const out: Omit<GpuDevice, 'processes'>[] = []
  for (const line of text.split('\n')) {
    const f = fields(line)
    if (f.length < 5 || !/^\d+$/.test(f[0]) || !/^GPU-/i.test(f[1])) continue
    // A name holding a comma spans several fields: the memory figures are the last two.
    out.push({
      index: Number(f[0]),
      uuid: f[1],
      name: f.slice(2, -2).join(', '),
      memoryUsed: num(f[f.length - 2]),
      memoryTotal: num(f[f.length - 1])
    })
  }
  return out
}

/** Counts the --query-compute-apps lines per GPU UUID (lower case). */
export function parseComputeApps(text: string): Map<string, number> {
  const counts = new Map<string, number>()
  for (const line of text.split('\n')) {
    const uuid = fields(line)[0]?.toLowerCase()
    if (uuid?.startsWith('gpu-')) counts.set(uuid, (counts.get(uuid) ?? 0) + 1)
  }
  return counts
}

/** The GPUs with their process counts, by index. */
export function gpuDevices(gpuQuery: string, appsQuery: string): GpuDevice[] {
  const apps = parseComputeApps(appsQuery)
  return parseGpuQuery(gpuQuery)
    .map(g => ({...g, processes: apps.get(g.uuid.toLowerCase()) ?? 0}))
    .sort((a, b) => a.index - b.index)
}

/** Idlest first: the fewest processes, then the least memory in use, then the lowest index. */
export function byIdleness(a: GpuDevice, b: GpuDevice): number {
  return a.processes - b.processes || a.memoryUsed - b.memoryUsed || a.index - b.index
}

/** How busy a GPU is, in words for the log. */
export function busyness(d: GpuDevice): string {
  if (d.processes === 0 && d.memoryUsed === 0) return 'idle'
  const procs = `${d.processes} process${d.processes === 1 ? '' : 'es'}`
  return `${procs}, ${d.memoryUsed} MiB in use`
}
