/**
 * Markdown for the step summary (pure). Every value a run reports (an image name, an error, a
 * daemon.json value) goes through here, so it shows as itself: a `|` never ends a table cell, a
 * backtick never opens code, a newline never ends a row, `<` never opens HTML.
 */

/** Inline content: text (escaped), a code span, or a sequence of them. */
export type Inline = string | {readonly code: string} | readonly Inline[]

/** A table cell is written inside a row; a block line starts a paragraph or a list item. */
type Where = 'cell' | 'block'

/** Characters that open inline markdown (or GitHub's math) wherever they stand. */
const INLINE_SPECIAL = /[\\`*_[\]<>~|&$]/g
/** What a line may not start with and stay a paragraph: a heading, a list, a rule. */
const BLOCK_START = /^(#|[+-]|\d+(?=[.)]))/

/** Text written so that markdown shows it as it is, on one line. */
function escapeText(text: string): string {
  return (
    text
      .replace(/\r\n?/g, '\n')
      .replace(INLINE_SPECIAL, '\\$&')
      // A row is one line, and so is a list item: a line break inside them is HTML.
      .replace(/\n/g, '<br>')
  )
}

/** A rendered line that starts a paragraph, its start escaped so that it stays one. */
function blockLine(rendered: string): string {
  return rendered.replace(BLOCK_START, m => (/^\d/.test(m) ? `${m}\\` : `\\${m}`))
}

/** The longest run of backticks in `text`. */
function longestBacktickRun(text: string): number {
  return Math.max(0, ...[...text.matchAll(/`+/g)].map(m => m[0].length))
}

/** A code span showing `text`; in a table cell a `\` before a `|` cannot be written, so that text stays plain. */
function codeSpan(text: string, where: Where): string {
  const flat = text.replace(/\r?\n|\r/g, ' ')
  if (flat === '') return ''
  if (where === 'cell' && flat.includes('\\|')) return escapeText(flat)
  const ticks = '`'.repeat(longestBacktickRun(flat) + 1)
  // A span that starts or ends with a backtick or a space needs a space of padding to keep it.
  const pad = /^[` ]|[` ]$/.test(flat) ? ' ' : ''
  // GFM splits a row at every unescaped `|`, code spans included.
  const body = where === 'cell' ? flat.replace(/\|/g, '\\|') : flat
  return `${ticks}${pad}${body}${pad}${ticks}`
}

/** Inline content as markdown, for a table cell or a block line. */
export function inline(content: Inline, where: Where = 'block'): string {
  if (typeof content === 'string') return escapeText(content)
  if ('code' in content) return codeSpan(content.code, where)
  return content.map(part => inline(part, where)).join('')
}

/** Text for HTML (a <summary>, where markdown is not read). */
function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Inline content as HTML. */
export function inlineHtml(content: Inline): string {
  if (typeof content === 'string') return escapeHtml(content)
  if ('code' in content) return `<code>${escapeHtml(content.code)}</code>`
  return content.map(inlineHtml).join('')
}

/** Table cells joined with a separator: `a · b · c`. */
export function joined(parts: readonly Inline[], separator: string): Inline[] {
  return parts.flatMap((part, i) => (i === 0 ? [part] : [separator, part]))
}

/** A GFM table, one line per row; every cell escaped, an empty one shown as —. */
export function table(header: readonly string[], rows: readonly (readonly Inline[])[]): string[] {
  const line = (cells: readonly Inline[]): string => {
    if (cells.length !== header.length) {
      throw new Error(`a summary row has ${cells.length} cells, its table ${header.length}`)
    }
    return `| ${cells.map(c => inline(c, 'cell').trim() || '—').join(' | ')} |`
  }
  return [line(header), `|${'---|'.repeat(header.length)}`, ...rows.map(line)]
}

/** A bulleted list, one line per item; `nested` items indented under the item before them. */
export function list(items: readonly (Inline | {readonly nested: readonly Inline[]})[]): string[] {
  return items.flatMap(item =>
    typeof item === 'object' && 'nested' in item
      ? item.nested.map(n => `  - ${blockLine(inline(n).trim())}`)
      : [`- ${blockLine(inline(item).trim())}`]
  )
}

/** A fenced code block that no line of `text` can close; lines kept as they are. */
export function fence(text: string, info = 'text'): string[] {
  const ticks = '`'.repeat(Math.max(3, longestBacktickRun(text) + 1))
  return [`${ticks}${info}`, ...text.replace(/\r\n?/g, '\n').split('\n'), ticks]
}

/** A collapsed section around markdown lines (open when asked). */
export function details(summary: Inline, body: readonly string[], open = false): string[] {
  // The blank lines let the body be read as markdown, not as part of the HTML block.
  return [
    `<details${open ? ' open' : ''}><summary>${inlineHtml(summary)}</summary>`,
    '',
    ...body,
    '',
    '</details>'
  ]
}
