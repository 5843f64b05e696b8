/** The README's inputs and outputs tables for action.yml's text. */
export function renderTables(actionYml: string): string
/** README text with the generated tables replaced. */
export function withTables(readme: string, actionYml: string): string
