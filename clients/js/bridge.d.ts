// Types of the dccbridge panel SDK: bridge.js (an ES module) and
// bridge.classic.js (a classic script that sets the global DccBridge).

/** Connection states, in the order a bridge usually goes through them. */
export type BridgeState =
  /** Connecting for the first time (or retrying before any hello succeeded). */
  | 'connecting'
  /** Connected, hello answered: calls go out, handlers are offered. */
  | 'ready'
  /** The connection dropped after a good hello; retrying with backoff. */
  | 'reconnecting'
  /** close() was called (or another connection of this instance replaced this one). */
  | 'closed';

/** What onState is told with each change. */
export interface StateDetail {
  /** The session id the bridge gave (state "ready"). */
  session?: string | null;
  /** The bridge resumed this session: calls parked for it are re-sent, replies held for it delivered (state "ready"). */
  resumed?: boolean;
  /** How many parked calls the bridge re-sends after this hello (state "ready"). */
  pending?: number;
  /** The websocket close code, when a connection ended. */
  code?: number;
  /** The websocket close reason, when a connection ended. */
  reason?: string;
  /** Why a connection attempt or a hello failed. */
  error?: Error;
}

export interface BridgeOptions {
  /** The bridge's websocket URL. Default "ws://127.0.0.1:8098/ws". */
  url?: string;
  /** The app namespace this panel serves, e.g. "aftereffects". Required. */
  app: string;
  /** "host" (default) or "tool". */
  kind?: 'host' | 'tool';
  /** A human label shown in the bridge's session list. */
  label?: string;
  /** The panel's version, shown in the session list. */
  version?: string;
  /**
   * The bridge's token (`bridge token` prints it); a file:// or null-origin
   * page needs it. Sent as ?token= on the URL and in bridge.hello.
   */
  token?: string;
  /**
   * This panel's instance id, kept across reconnects: the bridge waits for it
   * to come back with calls it had in flight. Default: one kept in
   * localStorage under "dccbridge.instance.<app>", or made once per load
   * where there is no localStorage. Give each page its own when several
   * pages of one app share a localStorage.
   */
  instance?: string;
  /**
   * The panel dedupes re-sent calls by forwarded id (the SDK does), so the
   * bridge may re-send a call after a reconnect. Default true.
   */
  replay?: boolean;
  /** The WebSocket constructor to use. Default: the global WebSocket. */
  WebSocket?: WebSocketConstructorLike;
  /** Called on each state change. */
  onState?: (state: BridgeState, detail: StateDetail) => void;
}

/** The part of the WebSocket constructor the SDK uses. */
export interface WebSocketConstructorLike {
  new (url: string): WebSocketLike;
}

/** The part of a WebSocket the SDK uses. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: { data: any }) => any) | null;
  onerror: ((ev: any) => any) | null;
  onclose: ((ev: { code?: number; reason?: string }) => any) | null;
}

/** The caller named in meta.caller of a routed call. */
export interface Caller {
  app: string;
  instance: string;
}

/** The meta member of a call as the bridge forwards it. */
export interface CallMeta {
  caller?: Caller;
  /** Milliseconds left of the call's timeout. */
  timeout_ms?: number;
  /** 1 for the first delivery, 2 and up for re-sends after a reconnect. */
  attempt?: number;
  [key: string]: unknown;
}

/**
 * A minimal abort signal (AbortController is not in Chromium 61). A handler's
 * ctx.signal is aborted when the caller cancels the call ($/cancelRequest).
 */
export interface BridgeSignal {
  readonly aborted: boolean;
  /** Why it was aborted (an Error with code -32800 for a cancel). */
  readonly reason: any;
  onabort: ((ev: { type: 'abort'; target: BridgeSignal }) => void) | null;
  addEventListener(type: 'abort', fn: (ev: { type: 'abort'; target: BridgeSignal }) => void): void;
  removeEventListener(type: 'abort', fn: (ev: { type: 'abort'; target: BridgeSignal }) => void): void;
}

/** What a handler is given besides params. */
export interface HandlerContext {
  /** The forwarded id: stable across re-sends of this call, never reused (null for a notification). */
  id: string | null;
  /** The call's meta, as the bridge forwarded it. */
  meta: CallMeta;
  /** meta.caller: who called (null when the bridge did not say). */
  caller: Caller | null;
  /** meta.attempt: 1, or more for a call re-sent after a reconnect. */
  attempt: number;
  /** Aborted when the caller cancels the call. */
  signal: BridgeSignal;
  /** Sends $/progress {"id": <forwarded id>, "value": value} to the caller; false when it could not be sent. */
  progress(value: unknown): boolean;
}

/**
 * A handler: its return value (or the value its promise resolves to) is the
 * result. A thrown error becomes a JSON-RPC error: code err.code when it is
 * an integer, else -32000; message err.message; data err.data.
 */
export type Handler<P = any, R = any> = (params: P, ctx: HandlerContext) => R | Promise<R>;

export interface CallOptions {
  /** meta.target: the instance to call. */
  target?: string;
  /** meta.timeout_ms: the call's timeout at the bridge (default there 10 min). */
  timeoutMs?: number;
  /** meta.wait_ms: how long the bridge waits for a session that offers the method (default there 10 s). */
  waitMs?: number;
  /** meta.idempotent: the method may safely run twice, so the bridge may re-send it to any client. */
  idempotent?: boolean;
  /** Called with each $/progress value the callee sends. */
  onProgress?: (value: any) => void;
  /** Cancels the call when aborted (an AbortSignal where there is one, or any object with aborted and addEventListener). */
  signal?: { aborted: boolean; addEventListener(type: 'abort', fn: () => void): void; removeEventListener(type: 'abort', fn: () => void): void };
}

/** The error a call rejects with. */
export interface BridgeError extends Error {
  /** The JSON-RPC error code (-32001 no session, -32002 timeout, -32004 callee gone, -32800 cancelled, …). */
  code: number;
  /** error.data: app, instance, method, may_have_run, … */
  data?: any;
  /** The reply's meta: who answered. */
  meta?: { app: string; instance: string; session: string };
}

/** A bridge.event notification. */
export interface BridgeEvent<D = any> {
  topic: string;
  data: D;
  /** RFC 3339 UTC with milliseconds. */
  at: string;
}

/** The connection to the bridge, kept up until close(). */
export interface Bridge {
  /** The connection state. */
  readonly state: BridgeState;
  /** The session id from the last hello result (null before the first). */
  readonly session: string | null;
  /**
   * The app's context (project, folder, task, …): from the hello result,
   * then from each set_context call (when this panel handles set_context)
   * and each context.changed event for this app (when subscribed).
   */
  readonly context: Record<string, any> | null;
  /** This panel's instance id. */
  readonly instance: string;
  /** This load's boot id: new at each connectBridge call. */
  readonly boot: string;
  /** The app namespace. */
  readonly app: string;

  /**
   * Offers name (as "name", served as app.name, or a full "Other.name") and
   * answers its calls with fn. Before the first hello it rides in the hello;
   * later through bridge.register. Returns a function that withdraws it.
   */
  handle<P = any, R = any>(name: string, fn: Handler<P, R>): () => void;
  /** Withdraws name (bridge.unregister). */
  unhandle(name: string): void;
  /**
   * Calls method ("app.method" or a bridge built-in such as "bridge.sessions").
   * The promise survives reconnects: a call not yet written waits for the next
   * connection; a call already written waits for the reply the bridge holds.
   */
  call<R = any>(method: string, params?: unknown, options?: CallOptions): Promise<R>;
  /** Sends a notification; false when there is no ready connection (it is not queued). */
  notify(method: string, params?: unknown): boolean;
  /**
   * Subscribes to topic (exact, or a prefix ending in ".*") and calls fn for
   * each event, also after reconnects. Returns the unsubscribe function.
   */
  on<D = any>(topic: string, fn: (data: D, event: BridgeEvent<D>) => void): () => void;
  /** Closes the connection for good; pending calls reject. */
  close(): void;
}

/** Connects to the bridge: hello goes out on the next tick with the handlers registered by then. */
export function connectBridge(options: BridgeOptions): Bridge;

/** The classic-script build sets this global. */
export as namespace DccBridge;
