/**
 * How long and how big each scenario runs. `short` is what `npm test` runs (each scenario well
 * under a minute on 2 shared cores); `long` is the runner's default, over 10 minutes of load.
 */
export interface Scale {
  name: 'short' | 'long';
  /** Requests per second of the steady load, and the loops that carry it. */
  rate: number;
  concurrency: number;
  /** 1: route and canary changes, converged one by one. */
  changes: number;
  /** 2: rolling restarts of the whole fleet. */
  restartRounds: number;
  /** 3: SIGKILL-and-restart of the leading operator. */
  operatorKills: number;
  /** 5: endpoints killed (and replaced) one after another. */
  endpointDeaths: number;
  /** How long load is held after a fault, to see what follows it. */
  holdMs: number;
  /** 6: how long the slow and flooding clients are kept on. */
  abuseMs: number;
}

export const SHORT: Scale = { name: 'short', rate: 150, concurrency: 6, changes: 40, restartRounds: 1, operatorKills: 2, endpointDeaths: 1, holdMs: 4_000, abuseMs: 8_000 };

export const LONG: Scale = { name: 'long', rate: 250, concurrency: 10, changes: 1000, restartRounds: 4, operatorKills: 2, endpointDeaths: 4, holdMs: 20_000, abuseMs: 60_000 };
