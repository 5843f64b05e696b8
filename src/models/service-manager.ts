/** How this host runs Docker's daemon (pure): a systemd unit, a SysV script, or a dockerd of the action's own. */

/** The service manager Docker's daemon runs under. */
export type ServiceManager = 'systemd' | 'sysv' | 'direct'
