/** The push phase's inputs: their action.yml defaults, their type, and their parser (pure). */
import type {Proxies} from '../../docker/proxy.js'
import type {RegistryAddress} from '../../docker/reference.js'
import {fail, int, oneOf, optional, type RawInputs} from '../../input-fields.js'
import {parseImageList, parseTagList, type ListItemError, type PushTarget} from './image-list.js'

/** The push inputs with their action.yml defaults. */
export const PUSH_INPUTS = {
  username: '',
  password: '',
  images: '',
  tags: '',
  'push-concurrency': '2',
  'push-retries': '3',
  'push-method': 'auto',
  'push-compression': 'auto'
} as const

type Raw = RawInputs<keyof typeof PUSH_INPUTS>

/** A login to `registry`: both fields or neither. */
export interface Login {
  username: string
  password: string
}

/**
 * How images are pushed: `auto` sends images of Docker's classic image store through the
 * registry's HTTP API and leaves the containerd image store to `docker push`; `docker` always
 * runs `docker push`.
 */
export type PushMethod = 'auto' | 'docker'

/**
 * How the registry API push sends layers: `auto` sends them uncompressed to a registry on this host
 * (loopback, or the one this run runs) and gzip-compressed elsewhere; `gzip` and `none` force it.
 */
export type PushCompression = 'auto' | 'gzip' | 'none'

/** What the push phase's inputs say. */
export interface PushInputs {
  login?: Login
  images: PushTarget[]
  pushConcurrency: number
  pushRetries: number
  pushMethod: PushMethod
  pushCompression: PushCompression
}

/** What the push phase reads: its inputs and how to reach `registry`. */
export interface PushSettings extends PushInputs {
  registry: RegistryAddress
  /** The local registry's certificate (it serves TLS): trusted when reading digests from it. */
  registryCa?: string
  /** This run runs the registry at `registry` on this host (a registry on the same disk). */
  registryLocal: boolean
  /**
   * Written into the per-job DOCKER_CONFIG a login makes, for the job's containers, and used by
   * the action's own requests to registries.
   */
  proxies?: Proxies
}

function login(raw: Raw): Login | undefined {
  const username = optional(raw, 'username')
  // The password is taken as given: spaces may belong to it.
  const password = raw.password === '' ? undefined : raw.password
  if (username !== undefined && password === undefined) {
    fail('password', '', 'username is set: give password too (from a secret)')
  }
  if (password !== undefined && username === undefined) {
    fail('username', '', 'password is set: give username too')
  }
  return username !== undefined && password !== undefined ? {username, password} : undefined
}

/** `images` with every tag of `tags`; errors name the line. */
function targets(raw: Raw, registry: RegistryAddress): PushTarget[] {
  let tags: string[]
  let images: PushTarget[]
  try {
    tags = parseTagList(raw.tags)
  } catch (e) {
    const err = e as ListItemError
    fail('tags', err.item, `line ${err.line}: ${err.reason}`)
  }
  try {
    images = parseImageList(raw.images, tags, registry)
  } catch (e) {
    const err = e as ListItemError
    fail('images', err.item, `line ${err.line}: ${err.reason}`)
  }
  if (images.length === 0 && tags.length > 0) {
    fail('tags', raw.tags.trim(), 'tags are added to the images in images, which is empty')
  }
  return images
}

/** Validates the push inputs against `registry` (pure); throws InputError. */
export function parsePushInputs(raw: Raw, registry: RegistryAddress): PushInputs {
  const pushMethod = oneOf(raw, 'push-method', ['auto', 'docker'] as const)
  const pushCompression = oneOf(raw, 'push-compression', ['auto', 'gzip', 'none'] as const)
  if (pushCompression === 'none' && pushMethod === 'docker') {
    fail(
      'push-compression',
      pushCompression,
      'docker push always compresses: use push-method auto for uncompressed layers'
    )
  }
  return {
    login: login(raw),
    images: targets(raw, registry),
    pushConcurrency: int(raw, 'push-concurrency', 1, 16),
    pushRetries: int(raw, 'push-retries', 0, 10),
    pushMethod,
    pushCompression
  }
}
