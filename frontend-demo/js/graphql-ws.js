// A small client for the graphql-transport-ws protocol (the one graphql-ws speaks):
// connection_init/connection_ack, subscribe/next/error/complete, ping/pong, and reconnection
// with exponential backoff and jitter. Every active subscription is sent again after a reconnect,
// and a subscription's first `next` after that carries the server's current value again.
//
// const client = new GraphQLWsClient({url, connectionParams: () => ({...}), onStatus});
// const stop = client.subscribe({query, variables}, {next, error, complete});

const PROTOCOL = "graphql-transport-ws";
const ACK_TIMEOUT_MS = 10_000;
const KEEPALIVE_MS = 20_000;   // ping this often while idle...
const PONG_TIMEOUT_MS = 10_000; // ...and call the connection dead without a pong by then
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
// Close codes after which trying again at once is pointless (bad request, forbidden, wrong
// sub-protocol, too many inits, server error); we still retry, but at the slowest pace.
const SLOW_RETRY_CODES = new Set([4400, 4401, 4403, 4406, 4409, 4429, 4500]);

export function websocketUrl(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

export class GraphQLWsClient {
  constructor({ url, connectionParams = () => ({}), onStatus = () => {} }) {
    this.url = url;
    this.connectionParams = connectionParams;
    this.onStatus = onStatus;
    this.status = "idle"; // idle | connecting | connected | waiting (to reconnect) | disposed
    this.socket = null;
    this.subs = new Map(); // id -> {payload, sink, sent}
    this.nextId = 1;
    this.attempt = 0;
    this.retryTimer = null;
    this.ackTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
  }

  subscribe(payload, sink) {
    // Ids only need to be unique within a connection (and stay unique across reconnects).
    const id = String(this.nextId++);
    this.subs.set(id, { payload, sink, sent: false });
    if (this.status === "connected") this.sendSubscribe(id);
    else if (this.status === "idle") this.connect();
    return () => this.unsubscribe(id);
  }

  unsubscribe(id) {
    const sub = this.subs.get(id);
    if (!sub) return;
    this.subs.delete(id);
    if (sub.sent && this.status === "connected") this.send({ id, type: "complete" });
  }

  // Reconnect now with fresh connection params (after sign-in or sign-out).
  restart() {
    if (this.status === "disposed") return;
    this.attempt = 0;
    this.teardown(1000, "restart");
    if (this.subs.size) this.connect();
    else this.setStatus("idle");
  }

  dispose() {
    this.teardown(1000, "bye");
    this.subs.clear();
    this.setStatus("disposed");
  }

  // --- internals -----------------------------------------------------------------------------

  setStatus(status, detail) {
    this.status = status;
    this.onStatus(status, detail);
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setStatus("connecting");
    let socket;
    try {
      socket = new WebSocket(this.url, PROTOCOL);
    } catch (err) {
      this.scheduleReconnect(null, String(err));
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (socket.protocol && socket.protocol !== PROTOCOL) {
        socket.close(4406, "unexpected sub-protocol");
        return;
      }
      this.send({ type: "connection_init", payload: this.connectionParams() || {} });
      this.ackTimer = setTimeout(() => socket.close(4408, "connection_ack timeout"), ACK_TIMEOUT_MS);
    };
    socket.onmessage = (event) => this.receive(socket, event.data);
    socket.onclose = (event) => {
      if (socket !== this.socket) return; // an old socket closing after restart()
      this.clearTimers();
      this.socket = null;
      for (const sub of this.subs.values()) sub.sent = false;
      if (this.status === "disposed") return;
      this.notifyDisconnect(event.code, event.reason);
      this.scheduleReconnect(event.code, event.reason);
    };
    // onerror is always followed by onclose, which does the work.
    socket.onerror = () => {};
  }

  receive(socket, raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      socket.close(4400, "invalid message");
      return;
    }
    switch (message.type) {
      case "connection_ack":
        clearTimeout(this.ackTimer);
        this.attempt = 0;
        this.setStatus("connected");
        for (const id of this.subs.keys()) this.sendSubscribe(id);
        this.keepAlive();
        break;
      case "ping":
        this.send({ type: "pong", payload: message.payload });
        break;
      case "pong":
        clearTimeout(this.pongTimer);
        this.keepAlive();
        break;
      case "next": {
        const sub = this.subs.get(message.id);
        if (sub) sub.sink.next?.(message.payload);
        break;
      }
      case "error": {
        const sub = this.subs.get(message.id);
        if (sub) {
          this.subs.delete(message.id);
          sub.sink.error?.(message.payload);
        }
        break;
      }
      case "complete": {
        const sub = this.subs.get(message.id);
        if (sub) {
          this.subs.delete(message.id);
          sub.sink.complete?.();
        }
        break;
      }
      default:
        socket.close(4400, `unexpected message type ${message.type}`);
    }
  }

  sendSubscribe(id) {
    const sub = this.subs.get(id);
    if (!sub || sub.sent) return;
    sub.sent = true;
    this.send({ id, type: "subscribe", payload: sub.payload });
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  keepAlive() {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      this.send({ type: "ping" });
      this.pongTimer = setTimeout(() => this.socket?.close(4499, "no pong"), PONG_TIMEOUT_MS);
    }, KEEPALIVE_MS);
  }

  notifyDisconnect(code, reason) {
    for (const sub of this.subs.values()) sub.sink.disconnected?.(code, reason);
  }

  scheduleReconnect(code, reason) {
    if (!this.subs.size) {
      this.setStatus("idle");
      return;
    }
    this.attempt += 1;
    const slow = SLOW_RETRY_CODES.has(code);
    const exp = slow ? BACKOFF_MAX_MS : Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.attempt - 1));
    const delay = Math.round(exp / 2 + Math.random() * (exp / 2));
    this.setStatus("waiting", { code, reason, delay, attempt: this.attempt });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  clearTimers() {
    clearTimeout(this.ackTimer);
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  teardown(code, reason) {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.clearTimers();
    const socket = this.socket;
    this.socket = null;
    for (const sub of this.subs.values()) sub.sent = false;
    if (socket) {
      this.notifyDisconnect(code, reason);
      if (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN) {
        socket.close(code, reason);
      }
    }
  }
}
