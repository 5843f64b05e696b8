/**
 * Markdown read back the way a GFM renderer (marked) reads it: the tables it finds, each cell as the
 * text a person sees, and a strict column count per row (GFM itself pads or cuts a row to fit).
 */
import {Parser, marked, type Token, type Tokens} from 'marked'

/** A table as rendered: the text a person sees in each cell (a line break inside a cell kept as \n). */
export interface RenderedTable {
  header: string[]
  rows: string[][]
  /** Whether each cell is a code span, nothing else. */
  code: boolean[][]
  /** Each source line that does not split into the header's number of columns. */
  badLines: string[]
}

/** The text HTML shows, <br> as a newline. */
export function htmlText(html: string): string {
  return html
    .replace(/<br>/g, '\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
}

/** Whether `line` splits into `n` columns, as the renderer splits it. */
function columnsMatch(line: string, n: number): boolean {
  // A delimiter row fits a header only when both have the same number of cells: otherwise the
  // renderer reads no table at all. This is how a row's own count is seen, before any padding.
  const probe = marked.lexer(`${line}\n|${'---|'.repeat(n)}\n`)
  return probe[0]?.type === 'table' && (probe[0] as Tokens.Table).header.length === n
}

/** Every token, nested ones included. */
function allTokens(md: string): Token[] {
  const out: Token[] = []
  // walkTokens returns the callbacks' results (none here: it only collects).
  void marked.walkTokens(marked.lexer(md), t => {
    out.push(t)
  })
  return out
}

/** Every table the renderer finds in `md`, in order. */
export function tables(md: string): RenderedTable[] {
  return allTokens(md)
    .filter((t): t is Tokens.Table => t.type === 'table')
    .map(t => {
      const cells = [t.header, ...t.rows]
      const n = t.header.length
      const lines = t.raw.split('\n').filter(l => l.trim() !== '')
      return {
        header: t.header.map(c => htmlText(Parser.parseInline(c.tokens))),
        rows: t.rows.map(r => r.map(c => htmlText(Parser.parseInline(c.tokens)))),
        code: cells
          .slice(1)
          .map(r => r.map(c => c.tokens.length === 1 && c.tokens[0].type === 'codespan')),
        badLines: lines.filter((l, i) => i !== 1 && !columnsMatch(l, n))
      }
    })
}

/** Lines that look like a table's delimiter row (outside code blocks): every one must start a table. */
export function delimiterRows(md: string): number {
  const code = allTokens(md)
    .filter(t => t.type === 'code')
    .map(t => t.raw)
    .join('\n')
  const count = (text: string): number => text.split('\n').filter(l => /^\|(-+\|)+$/.test(l)).length
  return count(md) - count(code)
}

/** What a person sees of `md` as one text (tags dropped): for checking that a value shows as itself. */
export function renderedText(md: string): string {
  return htmlText(marked.parse(md, {async: false}))
}

/** Each list item's own text (its first line, without a nested list), nested items included. */
export function listItems(md: string): string[] {
  return allTokens(md)
    .filter((t): t is Tokens.ListItem => t.type === 'list_item')
    .map(t => {
      // A tight item's first child is its text; anything else (a heading, a nested list) is not.
      const first = t.tokens[0]
      return first?.type === 'text' ? htmlText(Parser.parseInline(first.tokens ?? [])) : ''
    })
}
