/** Sizes and ages as people and Docker write them (pure). */

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40
}

/**
 * Bytes in a size such as `20GB`, `1.5TB`, `500MiB` or Docker's `20.97MB`, `0B` (KB/MB/GB/TB are
 * powers of 1000, as Docker prints them; KiB/MiB/GiB/TiB powers of 1024). Undefined otherwise: a
 * bare number or a single letter (`20G`) is ambiguous.
 */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(text.trim())
  const unit = m && UNITS[m[2].toLowerCase()]
  return m && unit ? Math.round(Number(m[1]) * unit) : undefined
}

/**
 * Bytes for a person, with the unit that fits and three significant digits, in powers of 1000 as
 * Docker prints them: `0 B`, `528 B`, `12.3 kB`, `2.28 MB`, `1.00 GB`; '' for no size at all.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return ''
  if (bytes < 1000) return `${Math.round(bytes)} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let value = bytes / 1000
  let unit = 0
  // 999.96 kB shows as 1000 kB at three digits: that is 1.00 MB.
  while (Number(value.toPrecision(3)) >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  const digits = Number(value.toPrecision(3)) >= 1000 ? value.toFixed(0) : value.toPrecision(3)
  return `${digits} ${units[unit]}`
}

const SECONDS: Record<string, number> = {s: 1, m: 60, h: 3600, d: 86_400, w: 604_800}

/** Seconds in an age such as `72h`, `7d`, `1h30m`, `90s` or `0`; undefined otherwise. */
export function parseDuration(text: string): number | undefined {
  const value = text.trim()
  if (value === '0') return 0
  if (!/^(\d+(\.\d+)?[smhdw])+$/.test(value)) return undefined
  let total = 0
  for (const m of value.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) total += Number(m[1]) * SECONDS[m[2]]
  return Math.round(total)
}
