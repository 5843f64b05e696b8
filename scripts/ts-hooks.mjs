// Lets Node run this project's TypeScript as it is (its own type stripping, Node 22.18 and later;
// `npm run` puts the Node 24 of node_modules first on PATH). The sources import each other as
// './x.js', the name they have once compiled: such an import reads './x.ts'. Imported first by
// the scripts that load TypeScript (bench/ts.mjs, scripts/summary-examples.mjs).
import * as nodeModule from 'node:module'

if (!process.features.typescript || !nodeModule.registerHooks) {
  console.error('This needs a Node.js that runs TypeScript (22.18 or later): run it with npm run …')
  process.exit(1)
}
nodeModule.registerHooks({
  resolve(specifier, context, next) {
    try {
      return next(specifier, context)
    } catch (e) {
      if (!/^\.{1,2}\/.*\.js$/.test(specifier)) throw e
      return next(specifier.replace(/\.js$/, '.ts'), context)
    }
  }
})
