// Shared state of the storefront page and the DOM elements the modules update.

import { ApiError } from "./api.js";
import { byId } from "./dom.js";

export const state = {
  me: null, // {id, email} when signed in
  cart: null,
  cartNotice: "",
  products: new Map(), // id -> product as last loaded (names for messages)
  cards: new Map(), // id -> card element in the grid
  stock: new Map(), // id -> live `available`
  search: "",
  endCursor: null,
  loadingProducts: 0,
  orders: new Map(), // id -> order
  orderIds: [], // newest first
  openOrderId: null,
  paying: false,
  authMode: "signin",
  afterAuth: null,
};

export const el = {
  grid: byId("product-grid"),
  summary: byId("results-summary"),
  empty: byId("products-empty"),
  emptyText: byId("products-empty-text"),
  clearSearch: byId("clear-search"),
  loadMore: byId("load-more"),
  searchForm: byId("search-form"),
  searchInput: byId("search-input"),
  liveIndicator: byId("live-indicator"),
  liveText: byId("live-text"),
  cartButton: byId("cart-button"),
  cartCount: byId("cart-count"),
  drawer: byId("cart-drawer"),
  cartLines: byId("cart-lines"),
  cartEmpty: byId("cart-empty"),
  cartFooter: byId("cart-footer"),
  cartSubtotal: byId("cart-subtotal"),
  cartSummary: byId("cart-summary"),
  cartNotice: byId("cart-notice"),
  cartError: byId("cart-error"),
  checkoutButton: byId("checkout-button"),
  clearCart: byId("clear-cart"),
  signin: byId("signin-button"),
  signout: byId("signout-button"),
  accountEmail: byId("account-email"),
  ordersLink: byId("orders-link"),
  authDialog: byId("auth-dialog"),
  authForm: byId("auth-form"),
  authTitle: byId("auth-title"),
  authIntro: byId("auth-intro"),
  authEmail: byId("auth-email"),
  authPassword: byId("auth-password"),
  authError: byId("auth-error"),
  authSubmit: byId("auth-submit"),
  modeSignin: byId("mode-signin"),
  modeRegister: byId("mode-register"),
  ordersSection: byId("orders"),
  ordersList: byId("orders-list"),
  ordersEmpty: byId("orders-empty"),
  refreshOrders: byId("refresh-orders"),
  orderDialog: byId("order-dialog"),
  orderTitle: byId("order-title"),
  orderDate: byId("order-date"),
  orderStatus: byId("order-status"),
  orderMessage: byId("order-message"),
  orderCountdown: byId("order-countdown"),
  orderLinesBox: byId("order-lines"),
  orderTotal: byId("order-total"),
  payBox: byId("pay-box"),
  payButton: byId("pay-button"),
  failButton: byId("fail-button"),
  cancelOrder: byId("cancel-order"),
  orderDone: byId("order-done"),
  orderError: byId("order-error"),
};

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Pages served over plain http from another host are not a secure context: no randomUUID.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function productNames() {
  const names = new Map();
  for (const [id, p] of state.products) names.set(id, p.name);
  for (const line of state.cart?.lines || []) names.set(String(line.product.id), line.product.name);
  return names;
}

export function errorText(err) {
  return err instanceof ApiError ? err.message : "Something went wrong. Please try again.";
}
