/** waitHttp: the benchmarks start servers as processes and measure only once each answers. */
import { get } from 'node:http';
import { eventually } from '../../tests/support/wait.ts';

/** waitHttp resolves once GET path with this Host header answers 200 on 127.0.0.1:port (two minutes at most). */
export async function waitHttp(port: number, host: string, path = '/'): Promise<void> {
  await eventually(`a 200 on port ${port}${path}`, () => new Promise<boolean>((resolve) => {
    get({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200); }).on('error', () => resolve(false));
  }), 120_000, { intervalMs: 100 });
}
