/** What teardown did, in words (pure): one line per kind for the summary and the log. */
import type {TeardownItem, TeardownResult} from '../../outputs.js'

const KINDS = [
  ['container', 'Containers'],
  ['process', 'GPU processes'],
  ['network', 'Networks']
] as const

/** `Containers: removed 2 (a, b); kept 1 (c: why)`, one line per kind that has anything. */
export function teardownLines(r: TeardownResult): string[] {
  const list = (items: TeardownItem[], why: boolean) =>
    items.map(i => (why ? `${i.id}: ${i.why}` : i.id)).join('; ')
  return KINDS.flatMap(([kind, label]) => {
    const removed = r.removed.filter(i => i.kind === kind)
    const kept = r.kept.filter(i => i.kind === kind)
    if (removed.length === 0 && kept.length === 0) return []
    const parts = [
      removed.length > 0 ? `removed ${removed.length} (${list(removed, false)})` : 'removed none',
      ...(kept.length > 0 ? [`kept ${kept.length} (${list(kept, true)})`] : [])
    ]
    return [`${label}: ${parts.join('; ')}`]
  })
}
