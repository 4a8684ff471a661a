/**
 * Network namespaces for backends that Kubernetes must accept in EndpointSlices (which refuse
 * loopback addresses): each namespace gets a veth pair and one /30 of 198.51.100.0/24
 * (TEST-NET-2, RFC 5737), so nothing ever collides with a real network — host side .1,
 * namespace side .2.
 *
 * While any slot is claimed, an `unreachable` route for the whole /24 guards the host: an
 * address whose namespace is gone fails at once (EHOSTUNREACH) instead of leaving through
 * the default route to whatever the network answers. The /30 routes of live namespaces are
 * more specific, so they win.
 *
 * Slots (which /30) are claimed machine-wide with O_EXCL files in CLAIM_DIR that name the
 * owner process (pid + start time), so concurrent runs never share an address, and a later
 * run can tell a dead owner's leftovers from a live one's. Only namespaces named in a claim
 * file are ever deleted.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, readdirSync, rmdirSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { VaneError } from '../core/index.ts';
import { procStart } from './controlplane/processes.ts';

export const NETNS_RANGE = '198.51.100.0/24';
export const CLAIM_DIR = process.env.VANE_NETNS_CLAIM_DIR ?? '/run/vane-netns';
const RANGE_BASE = ipv4ToInt('198.51.100.0');
const SLOTS = 64;
const KILL_GRACE_MS = 2_000;

export type NetnsErrorCode = 'ENETNS_UNAVAILABLE' | 'ENETNS_EXHAUSTED' | 'ENETNS_FAILED';

export class NetnsError extends VaneError<NetnsErrorCode> {
  override name = 'NetnsError';
}

interface Claim {
  name: string;
  run: string;
  slot: number;
  hostInterface: string;
  owner: { pid: number; start: string };
}

export interface Netns {
  name: string;
  run: string;
  slot: number;
  hostInterface: string;
  /** hostAddress is the host end of the veth pair: the source of requests from the host. */
  hostAddress: string;
  /** address is the namespace's own address: what an EndpointSlice lists. */
  address: string;
  /** spawn runs argv inside the namespace (nsenter --net, no /sys remount); destroy() kills it. */
  spawn(argv: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** destroy kills what runs inside (TERM, then KILL after a bound), deletes the namespace and releases the slot. */
  destroy(): Promise<void>;
  /** destroySync kills what runs inside at once (SIGKILL) and deletes the namespace; for exit hooks and probes. */
  destroySync(): void;
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function cidrRange(cidr: string): [number, number] | null {
  const [ip, bits = '32'] = cidr.split('/');
  if (!ip || !/^\d+\.\d+\.\d+\.\d+$/.test(ip)) return null;
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(ipv4ToInt(ip) / size) * size;
  return [start, start + size - 1];
}

function ip(args: readonly string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return { ok: false, out: '', err: r.error.message };
  return { ok: r.status === 0, out: r.stdout, err: r.stderr.trim() };
}

function mustIp(args: readonly string[]): string {
  const r = ip(args);
  if (!r.ok) throw new NetnsError('ENETNS_FAILED', `ip ${args.join(' ')}: ${r.err || 'failed'}`);
  return r.out;
}

/** usedRanges lists IPv4 ranges of this host's routes and addresses (other than the default route). */
function usedRanges(): [number, number][] {
  const out: [number, number][] = [];
  for (const args of [['-j', '-4', 'route', 'show', 'table', 'all'], ['-j', '-4', 'addr']]) {
    const r = ip(args);
    if (!r.ok) continue;
    let parsed: unknown;
    try { parsed = JSON.parse(r.out || '[]'); } catch { continue; }
    for (const entry of parsed as { dst?: string; type?: string; addr_info?: { local?: string; prefixlen?: number }[] }[]) {
      if (entry.type === 'unreachable' && entry.dst === NETNS_RANGE) continue;
      if (entry.dst && entry.dst !== 'default') {
        const range = cidrRange(entry.dst);
        if (range) out.push(range);
      }
      for (const a of entry.addr_info ?? []) {
        const range = a.local ? cidrRange(`${a.local}/${a.prefixlen ?? 32}`) : null;
        if (range) out.push(range);
      }
    }
  }
  return out;
}

/**
 * hostNetworkOverlap returns the first of cidrs that overlaps an address or route of this
 * host (other than the default route), or null. Documentation ranges are not always free: a
 * virtual machine may sit on 192.0.2.0/24 itself.
 */
export function hostNetworkOverlap(cidrs: readonly string[]): string | null {
  const used = usedRanges();
  for (const cidr of cidrs) {
    const r = cidrRange(cidr);
    if (r && used.some(([a, b]) => a <= r[1] && r[0] <= b)) return cidr;
  }
  return null;
}

function readClaim(file: string): Claim | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Claim;
  } catch {
    return null;
  }
}

function ownerAlive(owner: Claim['owner']): boolean {
  return procStart(owner.pid) === owner.start;
}

function killInside(name: string, pids: Iterable<number>): void {
  const inside = ip(['netns', 'pids', name]);
  const all = new Set(pids);
  if (inside.ok) for (const line of inside.out.split('\n')) if (/^\d+$/.test(line.trim())) all.add(Number(line.trim()));
  for (const pid of all) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

/** teardown deletes a claimed namespace, its host veth end and the claim; errors are ignored (it may be half made). */
function teardown(claim: Claim, pids: Iterable<number>): void {
  killInside(claim.name, pids);
  ip(['netns', 'del', claim.name]);
  if (ip(['link', 'show', claim.hostInterface]).ok) ip(['link', 'del', claim.hostInterface]);
  // Unlink only the claim we read: a concurrent reaper may have freed the slot and a new
  // owner claimed it since.
  const file = join(CLAIM_DIR, `slot-${claim.slot}`);
  const now = readClaim(file);
  if (now && now.name === claim.name && now.owner.pid === claim.owner.pid && now.owner.start === claim.owner.start) {
    try { unlinkSync(file); } catch { /* released already */ }
  }
}

const live = new Map<string, { claim: Claim; children: Set<ChildProcess> }>();

function livePids(children: Iterable<ChildProcess>): number[] {
  return [...children].flatMap((c) => (c.pid && c.exitCode === null && c.signalCode === null ? [c.pid] : []));
}

function validRun(run: string): void {
  if (!/^[a-z0-9]{1,6}$/.test(run)) throw new NetnsError('ENETNS_FAILED', `run id must be 1-6 of [a-z0-9], got ${JSON.stringify(run)}`);
}

function hasGuard(): boolean {
  const r = ip(['-4', 'route', 'show', 'type', 'unreachable', NETNS_RANGE]);
  return r.ok && r.out.includes(NETNS_RANGE.split('/')[0]!);
}

function ensureGuard(): void {
  if (hasGuard()) return;
  const r = ip(['route', 'add', 'unreachable', NETNS_RANGE]);
  if (!r.ok && !/File exists/.test(r.err)) throw new NetnsError('ENETNS_FAILED', `ip route add unreachable ${NETNS_RANGE}: ${r.err}`);
}

function claimSlot(run: string): Claim {
  mkdirSync(CLAIM_DIR, { recursive: true, mode: 0o700 });
  const used = usedRanges();
  const start = procStart(process.pid);
  if (start === null) throw new NetnsError('ENETNS_UNAVAILABLE', 'cannot read /proc/self/stat');
  for (let slot = 0; slot < SLOTS; slot++) {
    const lo = RANGE_BASE + slot * 4;
    if (used.some(([a, b]) => a <= lo + 3 && lo <= b)) continue;
    let fd: number;
    try {
      fd = openSync(join(CLAIM_DIR, `slot-${slot}`), 'wx', 0o600);
    } catch {
      continue;
    }
    const claim: Claim = { name: `vane-${run}-${slot}`, run, slot, hostInterface: `vh-${run}-${slot}`, owner: { pid: process.pid, start } };
    writeSync(fd, JSON.stringify(claim));
    closeSync(fd);
    return claim;
  }
  throw new NetnsError('ENETNS_EXHAUSTED', `no free /30 in ${NETNS_RANGE} (claims in ${CLAIM_DIR}; reapStaleNetns() frees those of dead processes)`);
}

/**
 * createNetns makes a namespace with a veth pair and addresses, lo up, and a default route
 * back to the host. Synchronous (a handful of `ip` calls, milliseconds) so that exit hooks
 * can undo it the same way. Half-made namespaces are removed before the error is thrown.
 */
export function createNetns(run: string): Netns {
  validRun(run);
  const claim = claimSlot(run);
  const base = RANGE_BASE + claim.slot * 4;
  const hostAddress = intToIpv4(base + 1);
  const address = intToIpv4(base + 2);
  try {
    ensureGuard();
    mustIp(['netns', 'add', claim.name]);
    mustIp(['link', 'add', claim.hostInterface, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', claim.name]);
    mustIp(['addr', 'add', `${hostAddress}/30`, 'dev', claim.hostInterface]);
    mustIp(['link', 'set', claim.hostInterface, 'up']);
    mustIp(['-n', claim.name, 'link', 'set', 'lo', 'up']);
    mustIp(['-n', claim.name, 'addr', 'add', `${address}/30`, 'dev', 'eth0']);
    mustIp(['-n', claim.name, 'link', 'set', 'eth0', 'up']);
    mustIp(['-n', claim.name, 'route', 'add', 'default', 'via', hostAddress]);
  } catch (err) {
    teardown(claim, []);
    throw err;
  }
  const children = new Set<ChildProcess>();
  live.set(claim.name, { claim, children });
  let destroyed: Promise<void> | null = null;
  return {
    name: claim.name,
    run,
    slot: claim.slot,
    hostInterface: claim.hostInterface,
    hostAddress,
    address,
    spawn(argv, opts = {}) {
      if (!live.has(claim.name)) throw new NetnsError('ENETNS_FAILED', `${claim.name} is destroyed`);
      const [cmd, ...args] = argv;
      if (!cmd) throw new NetnsError('ENETNS_FAILED', 'spawn needs a command');
      const child = spawn('nsenter', [`--net=/run/netns/${claim.name}`, '--', cmd, ...args], opts);
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    destroySync() {
      live.delete(claim.name);
      teardown(claim, livePids(children));
    },
    destroy() {
      destroyed ??= (async () => {
        const running = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
        for (const c of running) {
          // Whoever unref'd it to run in the background now waits for it.
          c.ref();
          c.kill('SIGTERM');
        }
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all(running.map((c) => new Promise((r) => { if (c.exitCode !== null || c.signalCode !== null) r(null); else c.once('exit', r); }))),
          new Promise((r) => { timer = setTimeout(r, KILL_GRACE_MS); }),
        ]);
        clearTimeout(timer);
        live.delete(claim.name);
        teardown(claim, livePids(children));
      })();
      return destroyed;
    },
  };
}

/** destroyAllNetnsSync removes every namespace this process made; for exit hooks. */
export function destroyAllNetnsSync(): string[] {
  const names: string[] = [];
  for (const [name, { claim, children }] of live) {
    live.delete(name);
    teardown(claim, livePids(children));
    names.push(name);
  }
  return names;
}

function claims(): Claim[] {
  let files: string[];
  try {
    files = readdirSync(CLAIM_DIR).filter((f) => /^slot-\d+$/.test(f));
  } catch {
    return [];
  }
  return files.flatMap((f) => readClaim(join(CLAIM_DIR, f)) ?? []);
}

/** destroyRunNetnsSync removes every namespace claimed under run id `run`, whichever process made it. */
export function destroyRunNetnsSync(run: string): string[] {
  validRun(run);
  const mine = claims().filter((c) => c.run === run);
  for (const c of mine) {
    live.delete(c.name);
    teardown(c, []);
  }
  return mine.map((c) => c.name);
}

/** reapStaleNetns removes namespaces whose owning process has exited without cleaning up (SIGKILL, crash). */
export function reapStaleNetns(): string[] {
  const stale = claims().filter((c) => !ownerAlive(c.owner));
  for (const c of stale) teardown(c, []);
  return stale.map((c) => c.name);
}

/**
 * probeNetns makes and removes one namespace: the sandbox may refuse `ip netns add` (no
 * CAP_SYS_ADMIN/CAP_NET_ADMIN, no `ip`), and a test run wants to know that once, up front.
 */
export function probeNetns(run: string): { ok: true } | { ok: false; reason: string } {
  try {
    createNetns(run).destroySync();
    releaseIfIdle();
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/** releaseIfIdle removes the guard route and CLAIM_DIR once no slot is claimed by anyone. */
export function releaseIfIdle(): void {
  try {
    if (readdirSync(CLAIM_DIR).some((f) => /^slot-\d+$/.test(f))) return;
    rmdirSync(CLAIM_DIR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return;
  }
  if (hasGuard()) ip(['route', 'del', 'unreachable', NETNS_RANGE]);
}
