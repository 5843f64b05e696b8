/** The groups of the root action's inputs, in table order. */
export const GROUPS: readonly string[]
/** Each input's group (an index into GROUPS) and type. */
export const INPUT_META: Readonly<Record<string, readonly [number, string]>>
/** The markdown tables for an action.yml's text (grouped: the root's). */
export function renderTables(actionYml: string, grouped?: boolean): string
/** Text with every generated block replaced; `read` gives the text of the action.yml a block names. */
export function withTables(doc: string, read: (file: string) => string): string
