/** Writes the step summary: to GITHUB_STEP_SUMMARY, or to the log when a person runs the action by hand. */
import * as core from '@actions/core'

/** Appends the summary to GITHUB_STEP_SUMMARY; without it (a person running the action by hand), prints it. */
export async function writeSummary(markdown: string, env = process.env): Promise<void> {
  if (!env.GITHUB_STEP_SUMMARY) {
    core.info(markdown)
    return
  }
  await core.summary.addRaw(markdown).write()
}
