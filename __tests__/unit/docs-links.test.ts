/**
 * Every relative link of README.md, the top-level documents and docs/*.md resolves: the file (or
 * folder) exists, and an #anchor names a heading of the target as GitHub slugs it.
 */
import {existsSync, readFileSync, readdirSync, statSync} from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from '@jest/globals'
import {marked, type Token, type Tokens} from 'marked'
import {htmlText} from './gfm.js'

const DOCS = [
  'README.md',
  ...['CONTRIBUTING.md', 'SECURITY.md', 'ARCHITECTURE.md', 'CHANGELOG.md'].filter(existsSync),
  ...readdirSync('docs')
    .filter(f => f.endsWith('.md'))
    .map(f => `docs/${f}`)
]

/** GitHub's heading anchor: lowercase, punctuation dropped, spaces to hyphens; repeats get -1, -2. */
function slugs(md: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const t of marked.lexer(md)) {
    if (t.type !== 'heading') continue
    const text = htmlText(marked.parseInline((t as Tokens.Heading).text) as string)
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

/** Every link target of a markdown text (inline links; code spans and blocks are not links). */
function links(md: string): string[] {
  const out: string[] = []
  void marked.walkTokens(marked.lexer(md), (t: Token) => {
    if (t.type === 'link') out.push((t as Tokens.Link).href)
  })
  return out
}

describe('relative links', () => {
  it('finds the documents to check', () => {
    expect(DOCS).toContain('docs/inputs.md')
  })

  it.each(DOCS)('%s: every relative link resolves, anchors included', doc => {
    const broken: string[] = []
    for (const href of links(readFileSync(doc, 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue // https:, mailto:
      const [file, anchor] = href.split('#')
      const target = file === '' ? doc : path.normalize(path.join(path.dirname(doc), file))
      if (!existsSync(target)) {
        broken.push(`${href} (no ${target})`)
        continue
      }
      if (anchor !== undefined && statSync(target).isFile()) {
        if (!slugs(readFileSync(target, 'utf8')).has(decodeURIComponent(anchor))) {
          broken.push(`${href} (no heading #${anchor} in ${target})`)
        }
      }
    }
    expect(broken).toEqual([])
  })

  it('slugs headings as GitHub does', () => {
    expect([...slugs('# Versions: `@v1` or a commit SHA\n## A b\n## A b\n')]).toEqual([
      'versions-v1-or-a-commit-sha',
      'a-b',
      'a-b-1'
    ])
  })
})
