import * as net from "node:net";
import { once } from "node:events";

/*
 * HTTP/2 spoken frame by frame over a plain socket (h2c prior knowledge), for what a
 * well-behaved client library will not do: open more streams than the server allows,
 * reset streams as fast as it opens them, never grant the server a flow-control window,
 * send GOAWAY and then sit on the connection. Headers are HPACK literals without Huffman
 * coding or indexing (RFC 7541 §6.2.2), so no encoder state is needed.
 */

export const frameType = { data: 0, headers: 1, rstStream: 3, settings: 4, ping: 6, goaway: 7, windowUpdate: 8 } as const;
export const frameFlag = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const;
export const settingId = { maxConcurrentStreams: 0x3, initialWindowSize: 0x4, maxHeaderListSize: 0x6 } as const;
const clientPreface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function settingsFrame(settings: ReadonlyArray<readonly [id: number, value: number]>): Buffer {
  const payload = Buffer.alloc(6 * settings.length);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(frameType.settings, 0, 0, payload);
}

function hpackLength(length: number): Buffer {
  if (length >= 127) throw new Error("header name or value too long for this encoder (< 127 bytes)");
  return Buffer.from([length]);
}

/** One header as a literal without indexing, new name (RFC 7541 §6.2.2, first form). */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x00]),
    hpackLength(name.length),
    Buffer.from(name),
    hpackLength(value.length),
    Buffer.from(value),
  ]);
}

/** A request's HEADERS frame: POST `path`, with `headers` (lower-case names), END_STREAM when `endStream`. */
export function headersFrame(
  streamId: number,
  path: string,
  headers: Readonly<Record<string, string>>,
  endStream = false,
): Buffer {
  const block = Buffer.concat([
    literal(":method", "POST"),
    literal(":scheme", "http"),
    literal(":authority", "127.0.0.1"),
    literal(":path", path),
    ...Object.entries(headers).map(([name, value]) => literal(name, value)),
  ]);
  return frame(frameType.headers, frameFlag.endHeaders | (endStream ? frameFlag.endStream : 0), streamId, block);
}

export function dataFrame(streamId: number, payload: Buffer, endStream: boolean): Buffer {
  return frame(frameType.data, endStream ? frameFlag.endStream : 0, streamId, payload);
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(frameType.rstStream, 0, streamId, payload);
}

export function goawayFrame(lastStreamId: number, code: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  payload.writeUInt32BE(code, 4);
  return frame(frameType.goaway, 0, 0, payload);
}

export interface RawH2Connection {
  readonly socket: net.Socket;
  /** The server's SETTINGS (its first frame), by identifier. */
  readonly serverSettings: ReadonlyMap<number, number>;
  /** Every frame received so far, in order. */
  readonly frames: Frame[];
  /** Calls `listener` with each frame as it arrives. */
  onFrame(listener: (frame: Frame) => void): void;
  write(...frames: Buffer[]): void;
  /** Resolves when the server closed (or reset) the connection. */
  readonly closed: Promise<void>;
  destroy(): void;
}

/**
 * A connection with the client preface and `settings` sent, resolved once the server's
 * SETTINGS arrived (and were acknowledged, as a client must, or the server would give up
 * on it). Nothing else is answered: no PING ACK, no WINDOW_UPDATE.
 */
export async function openRawH2(
  port: number,
  settings: ReadonlyArray<readonly [id: number, value: number]> = [],
  options: { readonly allowHalfOpen?: boolean } = {},
): Promise<RawH2Connection> {
  // allowHalfOpen: the server ending its side does not end ours — a client that simply
  // never closes, the connection half-open until the server destroys it.
  const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: options.allowHalfOpen ?? false });
  socket.on("error", () => {});
  await once(socket, "connect");
  const frames: Frame[] = [];
  const listeners: Array<(frame: Frame) => void> = [];
  const serverSettings = new Map<number, number>();
  let pending: Buffer = Buffer.alloc(0);
  let gotSettings: () => void = () => {};
  const settingsArrived = new Promise<void>((resolve) => (gotSettings = resolve));
  const closed = once(socket, "close").then(() => {});
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const received: Frame = {
        type: pending.readUInt8(3),
        flags: pending.readUInt8(4),
        streamId: pending.readUInt32BE(5) & 0x7fffffff,
        payload: pending.subarray(9, 9 + length),
      };
      pending = pending.subarray(9 + length);
      if (received.type === frameType.settings && (received.flags & frameFlag.ack) === 0) {
        for (let at = 0; at + 6 <= received.payload.length; at += 6) {
          serverSettings.set(received.payload.readUInt16BE(at), received.payload.readUInt32BE(at + 2));
        }
        if (!socket.destroyed) socket.write(frame(frameType.settings, frameFlag.ack, 0));
        gotSettings();
      }
      frames.push(received);
      for (const listener of listeners) listener(received);
    }
  });
  socket.write(Buffer.concat([clientPreface, settingsFrame(settings)]));
  await Promise.race([settingsArrived, closed]);
  return {
    socket,
    serverSettings,
    frames,
    onFrame: (listener) => void listeners.push(listener),
    write: (...out) => {
      if (!socket.destroyed) socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    },
    closed,
    destroy: () => socket.destroy(),
  };
}

/** The RST_STREAM code of a frame. */
export function rstCodeOf(received: Frame): number {
  return received.payload.readUInt32BE(0);
}

/** Whether `received` ends its stream from the server's side: END_STREAM on HEADERS or DATA, or RST_STREAM. */
export function endsStream(received: Frame): boolean {
  return (
    received.type === frameType.rstStream ||
    ((received.type === frameType.headers || received.type === frameType.data) && (received.flags & frameFlag.endStream) !== 0)
  );
}

/** Resolves when the server has ended every stream in `ids`, or closed the connection. */
export function allStreamsEnded(connection: RawH2Connection, ids: readonly number[]): Promise<void> {
  const open = new Set(ids);
  for (const received of connection.frames) if (endsStream(received)) open.delete(received.streamId);
  if (open.size === 0) return Promise.resolve();
  return Promise.race([
    connection.closed,
    new Promise<void>((resolve) =>
      connection.onFrame((received) => {
        if (endsStream(received) && open.delete(received.streamId) && open.size === 0) resolve();
      }),
    ),
  ]);
}
