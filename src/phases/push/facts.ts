/** What the summary shows for the push phase (pure): how many images were pushed, unchanged and failed. */
import type {ImageResult} from '../../outputs.js'
import type {Fact} from '../pipeline.js'
import {COMPRESSION_WORDS, type LayerCompression} from './plan.js'

/** How layers go to each registry the registry API pushes to, and why. */
export function compressionFacts(choices: readonly LayerCompression[]): Fact[] {
  return choices.map(c => ({
    label: `layers to ${c.registry}`,
    value: COMPRESSION_WORDS[c.compression],
    note: c.why
  }))
}

/** Before pushing (a dry run): how many targets would be pushed and how many the registry already holds. */
export function plannedPushFacts(toPush: number, unchanged: number): Fact[] {
  return [
    {label: 'to push', value: toPush},
    {label: 'unchanged', value: unchanged}
  ]
}

/** After pushing: the images output counted by status. */
export function pushFacts(images: readonly ImageResult[]): Fact[] {
  if (images.length === 0) return [{label: 'images', value: null}]
  const count = (status: ImageResult['status']): number =>
    images.filter(i => i.status === status).length
  return [
    {label: 'pushed', value: count('pushed')},
    {label: 'unchanged', value: count('unchanged')},
    {label: 'failed', value: count('failed')}
  ]
}
