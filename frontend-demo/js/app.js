// The storefront page: the catalogue and search, wiring of every control, and start-up.
//
// Modules (plain ES modules, no build step; the page uses the public GraphQL API only):
//   api.js         GraphQL over HTTP, the shopper's token / guest session id, POST /dev/pay
//   graphql-ws.js  a graphql-transport-ws client (subscriptions over WebSocket, reconnecting)
//   live.js        LiveFeed: a subscription per key, polling for keys the socket isn't serving
//   feeds.js       the page's socket and its two feeds: product stock, order status
//   store.js       shared state and the DOM elements the modules update
//   account.js     guest session, sign up / in / out      cart.js    the cart drawer, checkout
//   orders.js      "My orders" and the order dialog        views.js   DOM builders
//   drops.js       a drop's waiting line on its products' cards: join, follow live, buy with the pass
//   format.js      prices, dates, words for errors and reports, generated product art
//   queries.js     the GraphQL documents                   dom.js     h(), dialogs, announcements

import { renderAccount, signedOutLocally, wireAccount } from "./account.js";
import { graphql, identity } from "./api.js";
import { addToCart, emptyCart, loadCart, setCart, wireCart } from "./cart.js";
import { announce, wireDialog } from "./dom.js";
import { dropAction, trackDrops } from "./drops.js";
import { stockFeed, watchStock } from "./feeds.js";
import { plural } from "./format.js";
import { loadOrders, wireOrders } from "./orders.js";
import * as Q from "./queries.js";
import { el, errorText, state } from "./store.js";
import { productCard, skeletonCards } from "./views.js";

const PAGE_SIZE = 24;

// The card, not the product as first drawn, says whether it is still in a drop: it leaves the drop
// when the drop ends (drops.js).
function onCardButton(product, button) {
  const inDrop = Boolean(state.cards.get(String(product.id))?.dataset.dropId);
  return inDrop ? dropAction(product, button) : addToCart(product, button);
}

async function loadProducts({ append = false } = {}) {
  const ticket = ++state.loadingProducts;
  if (!append) {
    state.endCursor = null;
    state.cards.clear();
    el.grid.replaceChildren(...skeletonCards(6));
    el.empty.hidden = true;
    el.loadMore.hidden = true;
  }
  el.grid.setAttribute("aria-busy", "true");
  el.loadMore.disabled = true;
  try {
    const data = await graphql(Q.PRODUCTS, {
      first: PAGE_SIZE,
      after: append ? state.endCursor : null,
      search: state.search || null,
    });
    if (ticket !== state.loadingProducts) return; // a newer search won
    const { edges, pageInfo } = data.products;
    if (!append) el.grid.replaceChildren();
    for (const { node } of edges) {
      const id = String(node.id);
      state.products.set(id, node);
      if (!stockFeed.isLive(id)) state.stock.set(id, node.available);
      const product = { ...node, available: state.stock.get(id) ?? node.available };
      const card = productCard(product, { onAdd: onCardButton });
      state.cards.set(id, card);
      el.grid.append(card);
    }
    trackDrops(edges.map(({ node }) => node));
    state.endCursor = pageInfo.endCursor;
    el.loadMore.hidden = !pageInfo.hasNextPage;
    const shown = state.cards.size;
    el.empty.hidden = shown > 0;
    el.clearSearch.hidden = !state.search;
    el.emptyText.textContent = state.search
      ? `No products match “${state.search}”.`
      : "The shelves are empty right now. Check back soon for the next drop.";
    el.summary.textContent = state.search
      ? `${plural(shown, "product")} matching “${state.search}”`
      : `${plural(shown, "product")} in this drop`;
    watchStock();
  } catch (err) {
    if (ticket !== state.loadingProducts) return;
    if (!append) el.grid.replaceChildren();
    el.empty.hidden = false;
    el.emptyText.textContent = `We couldn't load the products. ${errorText(err)}`;
    el.clearSearch.hidden = !state.search;
  } finally {
    if (ticket === state.loadingProducts) {
      el.grid.setAttribute("aria-busy", "false");
      el.loadMore.disabled = false;
    }
  }
}

function setSearch(value, { push = false } = {}) {
  state.search = value.trim();
  const url = new URL(window.location.href);
  if (state.search) url.searchParams.set("search", state.search);
  else url.searchParams.delete("search");
  history[push ? "pushState" : "replaceState"](null, "", url);
  loadProducts();
}

// --- wiring --------------------------------------------------------------------------------------

function wire() {
  for (const dialog of [el.drawer, el.authDialog, el.orderDialog]) wireDialog(dialog);
  wireCart();
  wireAccount();
  wireOrders();

  let debounce = null;
  el.searchInput.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => setSearch(el.searchInput.value), 300);
  });
  el.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(debounce);
    setSearch(el.searchInput.value, { push: true });
  });
  el.clearSearch.addEventListener("click", () => {
    el.searchInput.value = "";
    setSearch("", { push: true });
  });
  el.loadMore.addEventListener("click", () => loadProducts({ append: true }));
  window.addEventListener("popstate", () => {
    state.search = new URLSearchParams(window.location.search).get("search") || "";
    el.searchInput.value = state.search;
    loadProducts();
  });
}

async function boot() {
  wire();
  state.search = (new URLSearchParams(window.location.search).get("search") || "").trim();
  el.searchInput.value = state.search;
  const products = loadProducts();
  try {
    const data = await graphql(Q.ME_AND_CART);
    if (identity.token && !data.me) {
      // The token was revoked or expired: continue as a guest (whose cart is this session's).
      signedOutLocally(identity.email ? "Your sign-in has expired. Please sign in again." : "");
      await loadCart();
    } else {
      state.me = data.me;
      if (state.me) identity.email = state.me.email;
      renderAccount();
      setCart(data.cart);
      if (state.me) loadOrders();
    }
  } catch (err) {
    setCart(emptyCart());
    announce(errorText(err), "error");
  }
  await products;
  document.body.dataset.ready = "true";
}

boot();
