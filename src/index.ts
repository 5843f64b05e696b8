/** The bundle's entry: the main or post step of the action.yml the runner started, or a job hook. */
import {entryForScript} from './entries.js'
import {jobStartedHook, run} from './main.js'
import {readHookConfig} from './phases/hooks/detect.js'
import {leaseRuntimeCreate} from './phases/gpus/lease-runtime-create.js'
import {jobCompletedHook, post} from './post.js'
import {isPostStep, markMainStep} from './state.js'

// One bundle serves both steps of every entry (the runner gives the post step the state the main
// step saved, and starts dist/<entry>.js, a file that only imports this bundle) and, installed by
// runner-hooks, the runner's job hooks (named by their argument).
const hook = process.argv[2]
if (hook === 'job-started') {
  await jobStartedHook(await readHookConfig())
} else if (hook === 'job-completed') {
  await jobCompletedHook(await readHookConfig())
} else if (hook === 'gpu-lease-create') {
  // The gpu-lease runtime, before each container it creates; a failure fails the create.
  process.exitCode = await leaseRuntimeCreate(process.argv[3] ?? '.', process.argv[4] ?? '')
} else if (isPostStep()) {
  await post()
} else {
  markMainStep()
  await run({entry: entryForScript(process.argv[1])})
}
