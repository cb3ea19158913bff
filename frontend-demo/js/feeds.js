// Live stock and order status: one WebSocket (graphql-transport-ws) for every subscription, and
// polling over HTTP for whatever the subscriptions are not delivering.

import { GRAPHQL_PATH, graphql, identity } from "./api.js";
import { renderCartWarnings } from "./cart.js";
import { GraphQLWsClient, websocketUrl } from "./graphql-ws.js";
import { LiveFeed } from "./live.js";
import { setOrderStatus } from "./orders.js";
import * as Q from "./queries.js";
import { el, state } from "./store.js";
import { setCardStock } from "./views.js";

export const ws = new GraphQLWsClient({
  url: websocketUrl(GRAPHQL_PATH),
  connectionParams: () => (identity.token ? { Authorization: `Bearer ${identity.token}` } : {}),
});

async function pollStock(ids) {
  const values = new Map();
  for (let i = 0; i < ids.length; i += Q.STOCK_POLL_BATCH) {
    const batch = ids.slice(i, i + Q.STOCK_POLL_BATCH);
    const vars = Object.fromEntries(batch.map((id, j) => [`p${j}`, id]));
    const data = await graphql(Q.stockPollQuery(batch.length), vars);
    batch.forEach((id, j) => {
      const product = data[`p${j}`];
      if (product) values.set(id, product.available);
    });
  }
  return values;
}

export const stockFeed = new LiveFeed({
  client: ws,
  subscription: (productId) => ({ query: Q.PRODUCT_STOCK_SUB, variables: { productId } }),
  pick: (data) => data.productStock?.available,
  poll: pollStock,
  onValue: (id, available) => setStock(id, available),
  onMode: (mode) => {
    el.liveIndicator.dataset.mode = mode;
    el.liveText.textContent =
      mode === "live" ? "Live stock" : mode === "polling" ? "Stock refreshes every few seconds" : "";
  },
});

async function pollOrders(ids) {
  const values = new Map();
  await Promise.all(
    ids.slice(0, 10).map(async (id) => {
      const data = await graphql(Q.ORDER_STATUS_QUERY, { id });
      if (data.order) values.set(id, { status: data.order.status, cancelReason: data.order.cancelReason });
    }),
  );
  return values;
}

export const orderFeed = new LiveFeed({
  client: ws,
  subscription: (orderId) => ({ query: Q.ORDER_STATUS_SUB, variables: { orderId } }),
  pick: (data) =>
    data.orderStatus ? { status: data.orderStatus.status, cancelReason: data.orderStatus.cancelReason } : undefined,
  poll: pollOrders,
  onValue: (id, value) => setOrderStatus(id, value),
  // Tells (tests, curious developers) whether order statuses arrive by subscription or by polling.
  onMode: (mode) => {
    el.orderDialog.dataset.feed = mode;
  },
  intervalMs: 3000,
});

export function watchStock() {
  const ids = new Set(state.cards.keys());
  for (const line of state.cart?.lines || []) ids.add(String(line.product.id));
  stockFeed.watch([...ids]);
}

export function watchOrders() {
  if (!state.me) {
    orderFeed.stopAll();
    return;
  }
  const ids = state.orderIds.filter((id) => state.orders.get(id)?.status === "PENDING");
  if (state.openOrderId && !ids.includes(state.openOrderId)) ids.push(state.openOrderId);
  orderFeed.watch(ids);
}

export function setStock(id, available) {
  id = String(id);
  const before = state.stock.get(id);
  state.stock.set(id, available);
  const card = state.cards.get(id);
  if (card) setCardStock(card, available);
  if (before !== available && state.cart?.lines.some((l) => String(l.product.id) === id)) {
    renderCartWarnings();
  }
}
