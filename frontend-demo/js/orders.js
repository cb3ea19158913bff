// The shopper's orders: the "My orders" list and the order dialog with its live status.

import { devPay, graphql } from "./api.js";
import { announce, openDialog } from "./dom.js";
import { watchOrders } from "./feeds.js";
import { dateTime, money, orderRef, userErrorText } from "./format.js";
import * as Q from "./queries.js";
import { el, errorText, state } from "./store.js";
import { expiryText, orderLines, orderListItem, statusBadge } from "./views.js";

const ORDERS_PAGE = 20;

export function rememberOrder(order) {
  state.orders.set(order.id, order);
  if (!state.orderIds.includes(order.id)) state.orderIds.unshift(order.id);
  renderOrders();
  watchOrders();
}

export async function loadOrders() {
  if (!state.me) return;
  try {
    const data = await graphql(Q.ORDERS, { first: ORDERS_PAGE });
    state.orderIds = [];
    for (const { node } of data.orders.edges) {
      const known = state.orders.get(node.id);
      // A live event may be newer than what the list query read.
      if (known && known.status !== "PENDING" && node.status === "PENDING") {
        node.status = known.status;
        node.cancelReason = known.cancelReason;
      }
      state.orders.set(node.id, node);
      state.orderIds.push(node.id);
    }
    renderOrders();
    watchOrders();
  } catch (err) {
    announce(errorText(err), "error");
  }
}

export function renderOrders() {
  const orders = state.orderIds.map((id) => state.orders.get(id)).filter(Boolean);
  el.ordersList.replaceChildren(...orders.map((o) => orderListItem(o, { onOpen: (order) => openOrder(order.id) })));
  el.ordersEmpty.hidden = orders.length > 0;
}

export function setOrderStatus(id, { status, cancelReason }) {
  const order = state.orders.get(id);
  if (!order) return;
  const changed = order.status !== status;
  order.status = status;
  order.cancelReason = cancelReason ?? null;
  if (!changed) return;
  if (status !== "PENDING") state.paying = false;
  const row = el.ordersList.querySelector(`[data-order-id="${CSS.escape(id)}"] .status-badge`);
  row?.replaceWith(statusBadge(order));
  if (state.openOrderId === id) renderOrderDialog();
  if (status === "PAID") announce(`Payment received: order #${orderRef(id)} is paid. Thank you!`, "success");
  else if (status === "CANCELLED") announce(cancelledText(id, cancelReason));
  watchOrders();
}

function cancelledText(id, reason) {
  const ref = `Order #${orderRef(id)}`;
  if (reason === "PAYMENT_FAILED") return `${ref} was cancelled because the payment failed.`;
  if (reason === "EXPIRED") return `${ref} was cancelled: it wasn't paid in time.`;
  if (reason === "CUSTOMER") return `${ref} is cancelled.`;
  return `${ref} was cancelled by the shop.`;
}

let countdownTimer = null;

export function openOrder(id) {
  state.openOrderId = id;
  state.paying = false;
  el.orderError.textContent = "";
  renderOrderDialog();
  watchOrders();
  clearInterval(countdownTimer);
  countdownTimer = setInterval(renderCountdown, 1000);
  openDialog(el.orderDialog, el.payBox.hidden ? null : el.payButton);
}

function renderCountdown() {
  const order = state.orders.get(state.openOrderId);
  el.orderCountdown.textContent = order ? expiryText(order) : "";
  el.orderCountdown.hidden = !el.orderCountdown.textContent;
}

function renderOrderDialog() {
  const order = state.orders.get(state.openOrderId);
  if (!order) return;
  el.orderTitle.textContent = `Order #${orderRef(order.id)}`;
  el.orderDate.textContent = `Placed ${dateTime(order.createdAt)}`;
  el.orderStatus.replaceChildren(statusBadge(order));
  el.orderLinesBox.replaceChildren(orderLines(order));
  el.orderTotal.textContent = money(order.totalCents, order.currency);
  const pending = order.status === "PENDING";
  el.payBox.hidden = !pending;
  el.cancelOrder.hidden = !pending;
  el.orderDone.hidden = pending;
  el.payButton.textContent = `Pay ${money(order.totalCents, order.currency)}`;
  for (const b of [el.payButton, el.failButton, el.cancelOrder]) b.disabled = state.paying;
  let message = "";
  if (pending && state.paying) message = "Payment sent. Waiting for the confirmation…";
  else if (order.status === "PAID") message = "Thank you! Your payment went through and your order is confirmed.";
  else if (order.status === "CANCELLED") {
    message = order.cancelReason === "PAYMENT_FAILED"
      ? "The payment didn't go through, so the order was cancelled and the items went back on sale."
      : "This order was cancelled and its items went back on sale.";
    if (order.needsRefund) message += " A payment arrived after cancellation; it will be refunded.";
  }
  el.orderMessage.textContent = message;
  el.orderMessage.hidden = !message;
  el.orderMessage.dataset.status = order.status;
  renderCountdown();
}

export async function pay(outcome) {
  const id = state.openOrderId;
  if (!id) return;
  el.orderError.textContent = "";
  state.paying = true;
  renderOrderDialog();
  try {
    await devPay(id, outcome);
    if (state.orders.get(id)?.status !== "PENDING") state.paying = false;
    renderOrderDialog();
  } catch (err) {
    state.paying = false;
    renderOrderDialog();
    el.orderError.textContent = errorText(err);
  }
}

export async function cancelOpenOrder() {
  const id = state.openOrderId;
  if (!id) return;
  el.orderError.textContent = "";
  el.cancelOrder.disabled = true;
  try {
    const { cancelOrder } = await graphql(Q.CANCEL_ORDER, { id });
    if (cancelOrder.errors.length) {
      el.orderError.textContent = cancelOrder.errors.map((e) => userErrorText(e)).join(" ");
    } else {
      // The subscription may have told us already; setOrderStatus announces a change only once.
      const order = cancelOrder.order;
      setOrderStatus(id, { status: order.status, cancelReason: order.cancelReason });
    }
  } catch (err) {
    el.orderError.textContent = errorText(err);
  } finally {
    el.cancelOrder.disabled = false;
  }
}

export function wireOrders() {
  el.orderDialog.addEventListener("close", () => {
    clearInterval(countdownTimer);
    state.openOrderId = null;
    watchOrders();
  });
  el.payButton.addEventListener("click", () => pay("succeeded"));
  el.failButton.addEventListener("click", () => pay("failed"));
  el.cancelOrder.addEventListener("click", cancelOpenOrder);
  el.refreshOrders.addEventListener("click", loadOrders);
}
