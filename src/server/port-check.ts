/**
 * Checks, before the model loads (seconds to minutes), that the ports the
 * servers will bind are free, so that a port in use fails the start at once
 * with the flag's name instead of after the load. The check binds and
 * releases each port; another process can still take it in between, and the
 * real bind then fails as before.
 */
import { createServer } from 'node:net';
import { FailedPrecondition } from '../common/errors.js';

/** A port to check: the flag that sets it, for the message. */
export interface PortToCheck {
  flag: string;
  port: number;
}

function probe(host: string, { flag, port }: PortToCheck): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'is in use by another process' : err.code === 'EACCES' ? 'needs privileges to bind' : `cannot be bound (${err.code ?? err.message})`;
      reject(new FailedPrecondition(`\`${flag}\` ${port} on ${host} ${why}: choose another port or stop what holds it`, { cause: err }));
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/**
 * Resolves when every port in `ports` (0 = any free port: skipped) can be bound on `host`.
 * @throws FailedPrecondition naming the first flag whose port is taken.
 */
export async function checkPortsFree(host: string, ports: readonly PortToCheck[]): Promise<void> {
  for (const p of ports) if (p.port !== 0) await probe(host, p);
}
