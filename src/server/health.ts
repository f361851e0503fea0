/**
 * Standard grpc.health.v1.Health (grpc-health-check). Readiness = the base
 * model is loaded: NOT_SERVING until engine.isReady(), SERVING after, and
 * NOT_SERVING again once shutdown starts. Reported for the overall server ("")
 * and for "gentune.v1.ModelService".
 */
import type { Server } from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { Engine } from '../engine/engine-api.js';

/** The fully-qualified service name clients may ask about. */
export const MODEL_SERVICE_NAME = 'gentune.v1.ModelService';

/** How often readiness is polled, in milliseconds. */
export const READINESS_POLL_MS = 100;

/** Health service that follows the engine's readiness. */
export class ReadinessHealth {
  private readonly impl = new HealthImplementation({ '': 'NOT_SERVING', [MODEL_SERVICE_NAME]: 'NOT_SERVING' });
  private current: ServingStatus = 'NOT_SERVING';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly engine: Pick<Engine, 'isReady'>) {}

  addToServer(server: Server): void {
    this.impl.addToServer(server);
  }

  /** Starts following engine.isReady(). */
  start(): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), READINESS_POLL_MS);
    this.timer.unref();
  }

  /** Stops following readiness and reports NOT_SERVING (shutdown). */
  stop(): void {
    clearInterval(this.timer);
    this.set('NOT_SERVING');
  }

  private poll(): void {
    this.set(this.engine.isReady() ? 'SERVING' : 'NOT_SERVING');
  }

  private set(status: ServingStatus): void {
    if (status === this.current) return;
    this.current = status;
    this.impl.setStatus('', status);
    this.impl.setStatus(MODEL_SERVICE_NAME, status);
  }
}
