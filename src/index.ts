/** The bundle's entry: the main or post step of the action.yml the runner started. */
import {entryForScript} from './entries.js'
import {run} from './main.js'
import {post} from './post.js'
import {isPostStep, markMainStep} from './state.js'

// One bundle serves both steps of every entry: the runner gives the post step the state the main
// step saved, and starts dist/<entry>.js, a file that only imports this bundle.
if (isPostStep()) {
  await post()
} else {
  markMainStep()
  await run({entry: entryForScript(process.argv[1])})
}
