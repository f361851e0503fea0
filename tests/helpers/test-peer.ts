/**
 * Tests that need a peer program from Debian (protoc, promtool, openssl,
 * Python's grpcio, Mesa's lavapipe) skip when it is missing on a developer's
 * machine, so a partial setup still runs the rest. Under CI (`CI` set, as
 * `.ci/run` is run) a missing peer is a failure instead: scripts/test.sh
 * installs every peer, so a missing one means an install step is broken, and
 * a skip there would hide it behind a green run.
 */

/** True where a missing peer must fail the test rather than skip it. */
export const PEERS_REQUIRED = Boolean(process.env.CI);

/**
 * The `skip` option of a test that needs a peer: the reason it is missing,
 * or false when it is present, or when it is missing under CI (the test then
 * runs and {@link requirePeer} fails it).
 */
export function skipWithoutPeer(missing: string | false | undefined): string | false {
  return missing && !PEERS_REQUIRED ? missing : false;
}

/** Throws, naming the peer and how to install it, when `missing` says it is absent. */
export function requirePeer(missing: string | false | undefined): void {
  if (missing) throw new Error(`a test peer is missing${PEERS_REQUIRED ? ' under CI (scripts/test.sh installs it)' : ''}: ${missing}`);
}
