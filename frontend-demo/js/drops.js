// Drops: a product in a live drop is sold through a waiting line. The shopper joins it from the
// product card, follows their place live (the `dropLine` subscription, polling while the socket
// is not delivering), and buys with their pass when their turn comes.
//
// A place belongs to whoever took it: the signed-in customer, or else the guest session. A guest
// who signs in to buy keeps the guest session's place (placeOrder accepts the pass of the session
// it comes with), so the line of a drop is always read as its holder, on a socket of its own.

import { ensureSession, openAuth } from "./account.js";
import { GRAPHQL_PATH, graphql, identity } from "./api.js";
import { announce, h } from "./dom.js";
import { countdown, orderRef, plural, userErrorText } from "./format.js";
import { GraphQLWsClient, websocketUrl } from "./graphql-ws.js";
import { LiveFeed } from "./live.js";
import { openOrder, rememberOrder } from "./orders.js";
import * as Q from "./queries.js";
import { errorText, newKey, productNames, state } from "./store.js";
import { setButtonLabel, setCardStock } from "./views.js";

const HOLDERS_KEY = "rushcart.dropHolders"; // {dropId: "customer" | "guest"}: who took each place
// After these the line has nothing more to say to this shopper.
const FINAL = new Set(["PURCHASED", "ENDED", "NOT_IN_LINE"]);

// dropId -> {drop, productIds: Set, line (null: not joined), holder, feed, client, busy}
const drops = new Map();
let ticker = null;

function holders() {
  try {
    return JSON.parse(localStorage.getItem(HOLDERS_KEY) || "{}") || {};
  } catch {
    return {};
  }
}

function rememberHolder(dropId, holder) {
  const all = holders();
  all[dropId] = holder;
  try {
    localStorage.setItem(HOLDERS_KEY, JSON.stringify(all));
  } catch {
    /* storage disabled: the place is still followed for this visit */
  }
}

// Who would hold a place in this drop: the one who took it, else whoever the shopper is now.
function holderOf(dropId) {
  const known = holders()[dropId];
  if (known === "guest" && identity.sessionId) return "guest";
  if (known === "customer" && identity.token) return "customer";
  if (identity.token) return "customer";
  return identity.sessionId ? "guest" : null;
}

function asOptions(holder) {
  return { as: holder === "guest" ? "guest" : "shopper" };
}

// --- words -------------------------------------------------------------------------------------

const number = new Intl.NumberFormat(navigator.language || "en-US");

export function waitWords(seconds) {
  if (seconds == null) return "";
  if (seconds < 60) return "less than a minute";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${plural(minutes, "minute")}`;
  return `about ${plural(Math.round(minutes / 60), "hour")}`;
}

function untilStart(drop, now = Date.now()) {
  return new Date(drop.startsAt).getTime() - now;
}

// [headline, detail, button label, button enabled] for the line as it stands.
function describe(entry, now = Date.now()) {
  const { line, drop } = entry;
  const opensIn = untilStart(drop, now);
  if (!line || line.status === "NOT_IN_LINE") {
    return [
      "Limited drop: sold through a fair waiting line.",
      opensIn > 0 ? `The line opens in ${countdown(opensIn)}. Join now; early places are shuffled at the start.`
        : "The line is open: places go in order of arrival.",
      "Join the line",
      true,
    ];
  }
  const left = `${plural(line.unitsLeft, "unit")} left · ${number.format(line.lineLength)} in line`;
  switch (line.status) {
    case "WAITING":
      if (line.position == null) {
        return [
          "You're in line.",
          `The drop opens in ${countdown(Math.max(0, opensIn))}: everyone in line by then gets a random place.`,
          "In line",
          false,
        ];
      }
      return [
        line.ahead === 0
          ? "You're in line — you're next"
          : `You're in line — ${number.format(line.ahead)} ahead of you, ${waitWords(line.estimatedWaitSeconds)}`,
        left,
        "In line",
        false,
      ];
    case "ADMITTED": {
      const ms = new Date(line.passExpiresAt).getTime() - now;
      return [
        "It's your turn!",
        ms > 0 ? `Buy within ${countdown(ms)} to use your place.` : "Your turn is running out…",
        state.me ? "Buy now" : "Sign in to buy",
        ms > 0,
      ];
    }
    case "LIKELY_SOLD_OUT":
      return [
        "Very likely sold out.",
        `The shoppers ahead of you will probably take the last ${line.unitsLeft === 1 ? "unit" : `${number.format(line.unitsLeft)} units`}. `
          + "We'll keep your place in case some come back.",
        "Likely sold out",
        false,
      ];
    case "SOLD_OUT":
      return ["Sold out.", "Every unit is taken. We'll keep your place in case some come back.", "Sold out", false];
    case "PURCHASED":
      return ["You got it!", "Your order is placed: see it under My orders.", "Bought ✓", false];
    case "PASS_EXPIRED":
      return ["Your turn ran out.", "The pass went to the next shopper in line.", "Turn expired", false];
    default:
      return ["", "", "Join the line", false];
  }
}

// --- rendering ---------------------------------------------------------------------------------

function render(entry, now = Date.now()) {
  const [headline, detail, label, enabled] = describe(entry, now);
  for (const id of entry.productIds) {
    const card = state.cards.get(id);
    if (!card || card.dataset.dropId !== String(entry.drop.id)) continue;
    const panel = card.querySelector(".drop-panel");
    panel.dataset.status = entry.line?.status || "NOT_JOINED";
    // The headline is a live region, read out when its words change; the detail holds the
    // countdowns, which would be read out every second.
    setText(panel, "drop-headline", headline, { role: "status" });
    setText(panel, "drop-detail", detail);
    const button = card.querySelector(".add-button");
    if (!entry.busy) {
      button.disabled = !enabled;
      setButtonLabel(button, label);
    }
  }
}

function setText(panel, className, text, attrs = {}) {
  let node = panel.querySelector(`.${className}`);
  if (!node) node = panel.appendChild(h("p", { class: className, ...attrs }));
  if (node.textContent !== text) node.textContent = text;
}

// The drop ended: its products sell as any other again.
function release(entry) {
  for (const id of entry.productIds) {
    const card = state.cards.get(id);
    if (!card || card.dataset.dropId !== String(entry.drop.id)) continue;
    delete card.dataset.dropId;
    card.classList.remove("in-drop");
    card.querySelector(".drop-panel")?.remove();
    const product = state.products.get(id);
    if (product) product.drop = { ...product.drop, endedAt: new Date().toISOString() };
    setCardStock(card, state.stock.get(id) ?? product?.available ?? 0);
  }
}

function setLine(entry, line) {
  entry.line = line;
  if (line.status === "ENDED") {
    stopFollowing(entry);
    release(entry);
    return;
  }
  if (FINAL.has(line.status)) stopFollowing(entry);
  render(entry);
}

function tick() {
  const now = Date.now();
  for (const entry of drops.values()) render(entry, now);
}

// --- following the line ------------------------------------------------------------------------

function follow(entry) {
  if (entry.feed) return;
  const holder = entry.holder;
  entry.client = new GraphQLWsClient({
    url: websocketUrl(GRAPHQL_PATH),
    connectionParams: () => (holder === "guest"
      ? { "X-Session-Id": identity.sessionId }
      : { Authorization: `Bearer ${identity.token}` }),
  });
  entry.feed = new LiveFeed({
    client: entry.client,
    subscription: (dropId) => ({ query: Q.DROP_LINE_SUB, variables: { dropId } }),
    pick: (data) => data.dropLine ?? undefined,
    poll: async (ids) => {
      const values = new Map();
      for (const dropId of ids) {
        const data = await graphql(Q.DROP_LINE_QUERY, { dropId }, asOptions(holder));
        if (data.dropLine) values.set(dropId, data.dropLine);
      }
      return values;
    },
    onValue: (_, line) => setLine(entry, line),
    onMode: (mode) => {
      for (const id of entry.productIds) {
        const panel = state.cards.get(id)?.querySelector(".drop-panel");
        if (panel) panel.dataset.feed = mode;
      }
    },
    intervalMs: 3000,
  });
  entry.feed.watch([String(entry.drop.id)]);
}

function stopFollowing(entry) {
  entry.feed?.stopAll();
  entry.client?.dispose();
  entry.feed = null;
  entry.client = null;
}

// Called with every page of products loaded: the cards of live drops get their line.
export function trackDrops(products) {
  for (const product of products) {
    if (!product.drop || product.drop.endedAt) continue;
    const dropId = String(product.drop.id);
    let entry = drops.get(dropId);
    if (!entry) {
      entry = { drop: product.drop, productIds: new Set(), line: null, holder: null, feed: null, client: null };
      drops.set(dropId, entry);
      resume(entry);
    }
    entry.productIds.add(String(product.id));
    render(entry);
  }
  if (drops.size && !ticker) ticker = setInterval(tick, 1000);
}

// A reload (or a second tab) finds the place the shopper already holds.
async function resume(entry) {
  const holder = holderOf(entry.drop.id);
  if (!holder) return;
  try {
    const data = await graphql(Q.DROP_LINE_QUERY, { dropId: entry.drop.id }, asOptions(holder));
    const line = data.dropLine;
    if (!line || line.status === "NOT_IN_LINE") return;
    entry.holder = holder;
    setLine(entry, line);
    if (!FINAL.has(line.status)) follow(entry);
  } catch {
    /* not known here: the shopper can join */
  }
}

// --- the card's button -------------------------------------------------------------------------

export async function dropAction(product, button) {
  const entry = drops.get(String(product.drop.id));
  if (!entry || entry.busy) return;
  const status = entry.line?.status;
  if (status === "ADMITTED") await buy(entry, product, button);
  else if (!status || status === "NOT_IN_LINE") await join(entry, button);
}

async function busy(entry, button, label, work) {
  entry.busy = true;
  button.disabled = true;
  setButtonLabel(button, label);
  try {
    await work();
  } catch (err) {
    announce(errorText(err), "error");
  } finally {
    entry.busy = false;
    render(entry);
  }
}

function join(entry, button) {
  return busy(entry, button, "Joining…", async () => {
    const holder = identity.token ? "customer" : "guest";
    if (holder === "guest") await ensureSession();
    const { joinDrop } = await graphql(Q.JOIN_DROP, { dropId: entry.drop.id }, asOptions(holder));
    if (joinDrop.errors.length) {
      announce(joinDrop.errors.map((e) => userErrorText(e)).join(" "), "error");
      return;
    }
    entry.holder = holder;
    rememberHolder(entry.drop.id, holder);
    setLine(entry, joinDrop.line);
    follow(entry);
    announce("You're in line. Keep this page open: it updates as the line moves.", "success");
  });
}

function buy(entry, product, button) {
  if (!state.me) {
    openAuth("signin", "Sign in or create an account to buy. Your place in line is kept.");
    return Promise.resolve();
  }
  return busy(entry, button, "Buying…", async () => {
    const { placeOrder } = await graphql(Q.PLACE_ORDER, {
      lines: [{ productId: product.id, quantity: 1 }],
      key: newKey(),
    });
    if (placeOrder.errors.length) {
      announce(placeOrder.errors.map((e) => userErrorText(e, productNames())).join(" "), "error");
      return;
    }
    rememberOrder(placeOrder.order);
    openOrder(placeOrder.order.id);
    announce(`Order #${orderRef(placeOrder.order.id)} placed. Your item is held while you pay.`, "success");
    // The subscription says PURCHASED within a second; the card need not wait for it.
    const data = await graphql(Q.DROP_LINE_QUERY, { dropId: entry.drop.id }, asOptions(entry.holder));
    if (data.dropLine) setLine(entry, data.dropLine);
  });
}
