import {run} from './main.js'
import {post} from './post.js'
import {isPostStep, markMainStep} from './state.js'

// One bundle serves both steps: the runner gives the post step the state the main step saved.
if (isPostStep()) {
  await post()
} else {
  markMainStep()
  await run()
}
