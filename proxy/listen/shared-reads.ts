/**
 * Plain-HTTP client sockets whose reads land in one buffer shared by all of a worker's
 * connections (net.Socket's `onread`) instead of a fresh 64 KiB allocation and a trip through
 * the Readable machinery per read: ~10 % less CPU per request in A/B runs at a fixed rate.
 * node:net offers `onread` only to sockets built with it and a net.Server builds its own, so
 * `acceptSharedReads` takes over the listening handle's connection callback. That is a private
 * hook: when it is missing the server is left as it is (its own sockets, 'data' events), and
 * everything works, slower.
 *
 * A read is a view of the shared buffer, valid only while its sink runs: whatever outlives the
 * call must be copied. Consumers that need a stream (node:http, after a handoff) get one from
 * HandedOffSocket.
 */
import { Socket, type Server } from 'node:net';
import { Duplex } from 'node:stream';

export interface ReadSink {
  /** `bytes` is a view of the shared buffer, valid only during the call; false pauses the socket. */
  onRead(bytes: Buffer): boolean;
}

const SHARED_READ_BYTES = 65_536;

interface SinkSlot { sink: ReadSink | null }

const slots = new WeakMap<Socket, SinkSlot>();

/**
 * acceptSharedReads makes a listening server hand each accepted connection, as a shared-read
 * socket, to `onSocket` (its 'connection' event no longer fires). `onSocket` must give the
 * socket a sink before it returns (setReadSink). False when the server's hook is missing.
 */
export function acceptSharedReads(server: Server, onSocket: (socket: Socket) => void): boolean {
  const handle = (server as unknown as { _handle?: { onconnection?: unknown } | null })._handle;
  if (handle === null || handle === undefined || typeof handle.onconnection !== 'function') return false;
  const shared = Buffer.allocUnsafe(SHARED_READ_BYTES);
  handle.onconnection = (err: number, clientHandle: unknown): void => {
    // A failed accept (EMFILE and the like) has no connection to serve; the listener goes on.
    if (err !== 0 || clientHandle === undefined || clientHandle === null) return;
    const slot: SinkSlot = { sink: null };
    const socket = new Socket({
      // The accepted TCP handle: what net.Server's own callback wraps (typed as a BoundSocket).
      handle: clientHandle as never,
      readable: true,
      writable: true,
      onread: {
        buffer: shared,
        callback: (n: number) => {
          if (slot.sink !== null) return slot.sink.onRead(shared.subarray(0, n));
          // Only a bug gets here: bytes with nowhere to go must not vanish quietly.
          socket.destroy(new Error('shared-read socket without a sink'));
          return false;
        },
      },
    });
    socket.setNoDelay(true);
    slots.set(socket, slot);
    onSocket(socket);
  };
  return true;
}

/** setReadSink directs a shared-read socket's reads; false for any other socket. */
export function setReadSink(socket: Socket, sink: ReadSink): boolean {
  const slot = slots.get(socket);
  if (slot === undefined) return false;
  slot.sink = sink;
  return true;
}

export function hasSharedReads(socket: Socket): boolean {
  return slots.has(socket);
}

/**
 * HandedOffSocket is a stream over a shared-read socket, for node:http after a handoff: reads
 * are copied into it, writes, ends and timeouts go to the socket. `_parent` is the socket, the
 * convention of TLSSocket, so code looking for the connection's own properties finds them.
 */
export class HandedOffSocket extends Duplex implements ReadSink {
  readonly _parent: Socket;
  private readonly socket: Socket;

  constructor(socket: Socket, first: Buffer | null) {
    super({ allowHalfOpen: true });
    this.socket = socket;
    this._parent = socket;
    if (!setReadSink(socket, this)) throw new Error('HandedOffSocket needs a shared-read socket');
    if (first !== null) this.push(first);
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.on('timeout', () => this.emit('timeout'));
  }

  onRead(bytes: Buffer): boolean {
    // pause(), not a false return: only pause() makes isPaused() true for _read to undo.
    if (!this.push(Buffer.from(bytes))) this.socket.pause();
    return true;
  }

  override _read(): void {
    if (this.socket.isPaused()) this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.socket.write(chunk, encoding, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }

  get remoteAddress(): string | undefined { return this.socket.remoteAddress; }
  get remotePort(): number | undefined { return this.socket.remotePort; }
  get remoteFamily(): string | undefined { return this.socket.remoteFamily; }
  get localAddress(): string | undefined { return this.socket.localAddress; }
  get localPort(): number | undefined { return this.socket.localPort; }

  setTimeout(ms: number, callback?: () => void): this {
    this.socket.setTimeout(ms);
    if (callback !== undefined) {
      if (ms === 0) this.off('timeout', callback); else this.once('timeout', callback);
    }
    return this;
  }

  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.socket.setKeepAlive(enable, initialDelay);
    return this;
  }
}
