import {jobStartedHook, run} from './main.js'
import {readHookConfig} from './phases/hooks/detect.js'
import {jobCompletedHook, post} from './post.js'
import {isPostStep, markMainStep} from './state.js'

// One bundle serves both steps (the runner gives the post step the state the main step saved) and,
// installed by runner-hooks, the runner's job hooks (named by their argument).
const hook = process.argv[2]
if (hook === 'job-started') {
  await jobStartedHook(await readHookConfig())
} else if (hook === 'job-completed') {
  await jobCompletedHook(await readHookConfig())
} else if (isPostStep()) {
  await post()
} else {
  markMainStep()
  await run()
}
