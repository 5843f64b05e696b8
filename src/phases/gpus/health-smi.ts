/**
 * What `nvidia-smi -q -x` says of each GPU's health (pure): volatile uncorrectable ECC errors,
 * pages waiting to be retired, row remapping pending or failed, a reset the driver asks for, and
 * fields the driver could not read (`ERR!`, `[Unknown Error]`). Reads the element names of
 * NVIDIA's DTDs (nvsmi_device_v10 to v12): old drivers count ECC as single_bit/double_bit, newer
 * ones as sram_/dram_ correctable and uncorrectable.
 */

/** Arguments of the full query, as XML. */
export const QUERY_XML = ['-q', '-x']

/** One element of the document: its name, attributes, children and own text. */
interface Element {
  name: string
  attrs: Record<string, string>
  children: Element[]
  text: string
}

/** A field the driver could not read, with the value it printed. */
export interface UnreadField {
  path: string
  value: string
}

/** One GPU's health signals, as the XML states them. */
export interface SmiGpu {
  uuid: string
  name: string
  /** Normalised PCI address `dddd:bb:dd` (domain's last four digits, bus, device), lower case. */
  bus: string
  /** Volatile (since the driver loaded) uncorrectable ECC counters that are not 0, by element. */
  uncorrectable: {field: string; count: number}[]
  /** Retired pages waiting for a reset (pending_retirement, or pending_blacklist of older drivers). */
  pendingRetirement: boolean
  remapPending: boolean
  remapFailure: boolean
  /** gpu_reset_status: reset_required or drain_and_reset_recommended is Yes (DTD v12). */
  resetRequired: boolean
  unread: UnreadField[]
  /**
   * This GPU alone did not answer `nvidia-smi -q -x -i INDEX` (its last line), when the query of
   * all GPUs failed: NVML cannot get its handle, and the others answer.
   */
  unanswered?: string
}

/** One GPU's own query: where the driver has it (from /proc/driver/nvidia/gpus), and what came back. */
export interface GpuQuery {
  bus: string
  ok: boolean
  output: string
}

/**
 * The GPUs from one query per GPU, in nvidia-smi's index order (pure): the run of `-q -x` for
 * all of them aborts at the first GPU whose handle NVML cannot get ("Unable to determine the
 * device handle for GPU …: Unknown Error"), so each is asked alone (`-i INDEX`); one that does
 * not answer is kept, by its PCI address, with its last line.
 */
export function perGpuQueries(queries: readonly GpuQuery[]): SmiGpu[] {
  return queries.map(q => {
    const gpu = q.ok ? parseSmiXml(q.output)[0] : undefined
    if (gpu) return gpu
    const last = q.output.trim().split('\n').pop() ?? ''
    return {
      uuid: '',
      name: '',
      bus: normaliseBus(q.bus),
      uncorrectable: [],
      pendingRetirement: false,
      remapPending: false,
      remapFailure: false,
      resetRequired: false,
      unread: [],
      unanswered: last || 'no output'
    }
  })
}

const TOKEN = /<!--[\s\S]*?-->|<![^>]*>|<\?[\s\S]*?\?>|<(\/?)([A-Za-z_][\w.-]*)([^>]*?)(\/?)>/g
const ATTR = /([A-Za-z_][\w.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g

function unescape(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&')
}

/** A small XML reader for nvidia-smi's flat documents (no namespaces, no CDATA, no mixed content). */
function parseXml(text: string): Element {
  const root: Element = {name: '#document', attrs: {}, children: [], text: ''}
  const stack: Element[] = [root]
  let last = 0
  for (const m of text.matchAll(TOKEN)) {
    const top = stack[stack.length - 1]
    top.text += text.slice(last, m.index)
    last = (m.index ?? 0) + m[0].length
    const [, closing, name, rawAttrs, selfClosing] = m
    if (name === undefined) continue // comment, DOCTYPE, declaration
    if (closing) {
      // Close up to the matching element; a stray closing tag is ignored.
      const at = stack.map(e => e.name).lastIndexOf(name)
      if (at > 0) stack.length = at
      continue
    }
    const attrs: Record<string, string> = {}
    for (const a of rawAttrs.matchAll(ATTR)) attrs[a[1]] = unescape(a[2] ?? a[3] ?? '')
    const el: Element = {name, attrs, children: [], text: ''}
    top.children.push(el)
    if (!selfClosing) stack.push(el)
  }
  const trim = (e: Element): void => {
    e.text = unescape(e.text).trim()
    e.children.forEach(trim)
  }
  trim(root)
  return root
}

function child(e: Element | undefined, name: string): Element | undefined {
  return e?.children.find(c => c.name === name)
}

function textOf(e: Element | undefined, ...path: string[]): string | undefined {
  let at = e
  for (const p of path) at = child(at, p)
  return at?.text
}

const yes = (v: string | undefined): boolean => v?.trim().toLowerCase() === 'yes'

/** `00000000:3B:00.0` or `0000:3b:00` → `0000:3b:00`; undefined when it is not a PCI address. */
export function normaliseBus(text: string | undefined): string {
  const m = /^([0-9a-f]+):([0-9a-f]{1,2}):([0-9a-f]{1,2})(?:\.[0-7])?$/i.exec(text?.trim() ?? '')
  if (!m) return ''
  const domain = m[1].slice(-4).padStart(4, '0')
  return `${domain}:${m[2].padStart(2, '0')}:${m[3].padStart(2, '0')}`.toLowerCase()
}

/** Values the driver prints for a field it failed to read. */
const UNREAD = new Set(['err!', '[unknown error]', 'unknown error'])

function unreadFields(e: Element, prefix: string, out: UnreadField[]): void {
  for (const c of e.children) {
    const path = prefix ? `${prefix}/${c.name}` : c.name
    if (c.children.length === 0 && UNREAD.has(c.text.toLowerCase())) out.push({path, value: c.text})
    unreadFields(c, path, out)
  }
}

function count(text: string): number | undefined {
  return /^\d+$/.test(text.trim()) ? Number(text.trim()) : undefined
}

/** Volatile uncorrectable counters: *uncorrectable* leaves (v11+), or double_bit's total (v10). */
function uncorrectable(gpu: Element): {field: string; count: number}[] {
  const volatile = child(child(gpu, 'ecc_errors'), 'volatile')
  if (!volatile) return []
  const out: {field: string; count: number}[] = []
  for (const c of volatile.children) {
    if (c.name === 'double_bit') {
      const total = count(textOf(c, 'total') ?? '')
      if (total) out.push({field: 'volatile double_bit total', count: total})
    } else if (c.name.includes('uncorrectable')) {
      const n = count(c.text)
      if (n) out.push({field: `volatile ${c.name}`, count: n})
    }
  }
  return out
}

/** Every GPU of a `nvidia-smi -q -x` document, in the order listed (nvidia-smi's index order). */
export function parseSmiXml(text: string): SmiGpu[] {
  const log = child(parseXml(text), 'nvidia_smi_log')
  return (log?.children ?? [])
    .filter(e => e.name === 'gpu')
    .map(gpu => {
      const remap = child(gpu, 'remapped_rows')
      const retired = child(gpu, 'retired_pages')
      const reset = child(gpu, 'gpu_reset_status')
      const unread: UnreadField[] = []
      unreadFields(gpu, '', unread)
      return {
        uuid: textOf(gpu, 'uuid') ?? '',
        name: textOf(gpu, 'product_name') ?? '',
        bus: normaliseBus(textOf(gpu, 'pci', 'pci_bus_id') ?? gpu.attrs.id),
        uncorrectable: uncorrectable(gpu),
        pendingRetirement:
          yes(textOf(retired, 'pending_retirement')) || yes(textOf(retired, 'pending_blacklist')),
        remapPending: yes(textOf(remap, 'remapped_row_pending')),
        remapFailure: yes(textOf(remap, 'remapped_row_failure')),
        resetRequired:
          yes(textOf(reset, 'reset_required')) || yes(textOf(reset, 'drain_and_reset_recommended')),
        unread
      }
    })
}
