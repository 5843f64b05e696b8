import type {Entry} from '../src/entries.js'
/** The action.yml text of a sub-action, from the root action.yml's text. */
export function renderSubAction(rootYml: string, entry: Entry): Promise<string>
/** The dist/<entry>.js of a sub-action. */
export function entryScript(entry: Entry): string
