// Live values for a set of keys (product stock, order status): a GraphQL subscription per key,
// and polling over HTTP for every key whose subscription is not delivering right now (socket
// down, server refusing the subscription, stream ended). A subscription's first event is the
// current value, so a key is "live" from its first event after each (re)subscribe.

const RESUBSCRIBE_AFTER_MS = 30_000;

export class LiveFeed {
  // subscription(key) -> {query, variables}; pick(data) -> value or undefined;
  // poll(keys) -> Promise<Map<key, value>>; onValue(key, value); onMode("live" | "polling" | "idle").
  constructor({ client, subscription, pick, poll, onValue, onMode = () => {}, intervalMs = 4000 }) {
    this.client = client;
    this.subscription = subscription;
    this.pick = pick;
    this.poll = poll;
    this.onValue = onValue;
    this.onMode = onMode;
    this.intervalMs = intervalMs;
    this.entries = new Map(); // key -> {stop, live, retryAt}
    this.timer = null;
    this.polling = false;
    this.mode = "idle";
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.tick();
    });
  }

  // Follow exactly these keys from now on.
  watch(keys) {
    const wanted = new Set(keys.map(String));
    for (const [key, entry] of this.entries) {
      if (!wanted.has(key)) {
        entry.stop?.();
        this.entries.delete(key);
      }
    }
    for (const key of wanted) {
      if (!this.entries.has(key)) {
        const entry = { stop: null, live: false, retryAt: 0 };
        this.entries.set(key, entry);
        this.subscribe(key, entry);
      }
    }
    this.ensureTimer();
    this.updateMode();
  }

  add(key) {
    this.watch([...this.entries.keys(), String(key)]);
  }

  stopAll() {
    this.watch([]);
  }

  isLive(key) {
    return Boolean(this.entries.get(String(key))?.live);
  }

  subscribe(key, entry) {
    entry.live = false;
    entry.retryAt = 0;
    const fail = () => {
      entry.stop = null;
      entry.live = false;
      entry.retryAt = Date.now() + RESUBSCRIBE_AFTER_MS;
      this.updateMode();
    };
    entry.stop = this.client.subscribe(this.subscription(key), {
      next: (payload) => {
        if (this.entries.get(key) !== entry) return;
        const value = payload && payload.data ? this.pick(payload.data) : undefined;
        if (value === undefined) {
          entry.live = false;
        } else {
          entry.live = true;
          this.onValue(key, value);
        }
        this.updateMode();
      },
      error: fail,
      complete: fail,
      disconnected: () => {
        entry.live = false;
        this.updateMode();
      },
    });
  }

  ensureTimer() {
    if (this.entries.size && !this.timer) {
      this.timer = setInterval(() => this.tick(), this.intervalMs);
    } else if (!this.entries.size && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  async tick() {
    if (document.hidden || this.polling) return;
    const now = Date.now();
    const stale = [];
    for (const [key, entry] of this.entries) {
      if (!entry.stop && entry.retryAt && now >= entry.retryAt) this.subscribe(key, entry);
      if (!entry.live) stale.push(key);
    }
    if (!stale.length) return;
    this.polling = true;
    try {
      const values = await this.poll(stale);
      for (const [key, value] of values) {
        const entry = this.entries.get(String(key));
        // A subscription that went live meanwhile has the fresher value.
        if (entry && !entry.live && value !== undefined) this.onValue(String(key), value);
      }
    } catch {
      /* offline for a moment: the next tick tries again */
    } finally {
      this.polling = false;
    }
  }

  updateMode() {
    let mode = "idle";
    if (this.entries.size) {
      mode = [...this.entries.values()].every((e) => e.live) ? "live" : "polling";
    }
    if (mode !== this.mode) {
      this.mode = mode;
      this.onMode(mode);
    }
  }
}
