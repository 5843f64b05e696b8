import * as core from '@actions/core'
import {run} from './main.js'
import {post} from './post.js'

// One bundle serves both steps: the runner gives the post step the state the main step saved.
if (core.getState('isPost') === 'true') {
  await post()
} else {
  core.saveState('isPost', 'true')
  await run()
}
