import {describe, expect, it} from '@jest/globals'
import {details, fence, inline, list, table} from '../../src/summary/markdown.js'
import {listItems, renderedText, tables} from './gfm.js'

/** Values a run may report (image names, errors, daemon.json values), each with what must show. */
const NASTY: [string, string][] = [
  ['a pipe', 'a|b'],
  ['a pipe alone', '|'],
  ['an escaped pipe', 'a\\|b'],
  ['a backslash before the end', 'trailing\\'],
  ['a lone backslash', '\\'],
  ['backticks', '`docker` and ``two``'],
  ['a backtick at each end', '`x`'],
  ['a newline', 'first line\nsecond line'],
  ['CRLF', 'first\r\nsecond'],
  ['HTML', '<b>bold</b> <script>x</script>'],
  ['an entity', '&amp; &lt;'],
  ['emphasis', '*not em* _nor this_ **nor**'],
  ['a link', '[text](http://x) ![img](y)'],
  ['strikethrough', '~~gone~~'],
  ['math', '$x$ and $$y$$'],
  ['a heading start', '# not a heading'],
  ['a list start', '- not a list'],
  ['an ordered list start', '1. not a list'],
  ['a plus start', '+ runtimes.nvidia: {"path":"nvidia-container-runtime","args":[]}'],
  ['daemon.json values', '~ default-runtime: "runc" → "nvidia"; log-opts: {"max-size":"10m|20m"}']
]

describe('a table cell', () => {
  it.each(NASTY)('shows %s as itself, in its cell, as text and as code', (_what, value) => {
    const md = table(['Text', 'Code', 'After'], [[value, {code: value}, 'end']]).join('\n')
    const [t, ...others] = tables(md)
    expect(others).toEqual([])
    expect(t.badLines).toEqual([])
    const shown = value.replace(/\r\n/g, '\n')
    expect(t.rows).toEqual([[shown, shown.replace(/\n/g, ' '), 'end']])
  })

  it('is a code span unless a backslash stands before a pipe (GFM cannot write that in a cell)', () => {
    const md = table(['A', 'B'], [[{code: 'a|b`c'}, {code: 'a\\|b'}]]).join('\n')
    expect(tables(md)[0].code).toEqual([[true, false]])
  })

  it('is — when empty, and a row of the wrong length is refused', () => {
    expect(table(['A', 'B'], [['', {code: ''}]])).toEqual(['| A | B |', '|---|---|', '| — | — |'])
    expect(() => table(['A', 'B'], [['only one']])).toThrow(
      'a summary row has 1 cells, its table 2'
    )
  })
})

describe('a list item', () => {
  it.each(NASTY)('shows %s as itself, on its own line', (_what, value) => {
    const md = list(['before', value, {nested: [value]}, 'after']).join('\n')
    const shown = value.replace(/\r\n/g, '\n')
    expect(listItems(md)).toEqual(['before', shown, shown, 'after'])
  })
})

describe('inline content', () => {
  it('joins text and code spans, with backticks longer than any inside', () => {
    expect(inline(['Docker ', {code: '27.3.1'}, ' (docker-ce)'])).toBe(
      'Docker `27.3.1` (docker-ce)'
    )
    expect(inline({code: 'a`b'})).toBe('``a`b``')
    expect(inline({code: '`x`'})).toBe('`` `x` ``')
  })
})

describe('a fenced block', () => {
  it('holds any text, backtick fences included, line for line', () => {
    const text = 'one\n```\nthree | `four`'
    const md = fence(text).join('\n')
    expect(md.startsWith('````text\n')).toBe(true)
    expect(renderedText(md).trimEnd()).toBe(text)
  })
})

describe('a collapsed section', () => {
  it('escapes its summary as HTML and reads its body as markdown', () => {
    const md = details(['<b>', {code: 'a<b'}], table(['A'], [['x|y']])).join('\n')
    expect(md.split('\n')[0]).toBe('<details><summary>&lt;b&gt;<code>a&lt;b</code></summary>')
    expect(tables(md).map(t => t.rows)).toEqual([[['x|y']]])
    expect(details('s', ['x'], true)[0]).toBe('<details open><summary>s</summary>')
  })
})
