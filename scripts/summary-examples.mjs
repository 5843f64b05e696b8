#!/usr/bin/env node
// Writes the README's step summary examples (scripts/summary-scenarios.ts) between the marker
// comments. `npm run summary-examples` rewrites README.md; a unit test fails when the two differ.
import {readFileSync, writeFileSync} from 'node:fs'
import './ts-hooks.mjs'

const {withExamples} = await import('./summary-scenarios.ts')
writeFileSync('README.md', withExamples(readFileSync('README.md', 'utf8')))
