/** Labels this action puts on what it runs in Docker (pure constants). */

/**
 * On every container this action made: the only ones it will stop or replace, and the ones a
 * daemon restart does not have to protect (they run with --restart always).
 */
export const LABEL_MANAGED = 'org.docker-gpu-setup.managed'
