#!/usr/bin/env node
// Writes docs/summary.md's step summary examples (scripts/summary-scenarios.ts) between the marker
// comments. `npm run summary-examples` rewrites docs/summary.md; a unit test fails when the two differ.
import {readFileSync, writeFileSync} from 'node:fs'
import './ts-hooks.mjs'

const {withExamples} = await import('./summary-scenarios.ts')
writeFileSync('docs/summary.md', withExamples(readFileSync('docs/summary.md', 'utf8')))
