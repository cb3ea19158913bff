// What the shopper sees: product cards, cart lines, orders. Functions here build DOM from data
// and take callbacks for what buttons do; app.js owns the state and the API calls.

import { h } from "./dom.js";
import {
  LOW_STOCK, countdown, dateTime, money, orderRef, plural, productArt, statusLabel, stockWords,
} from "./format.js";

// --- products ----------------------------------------------------------------------------------

// A product of a live drop is sold through its waiting line: the card's button joins the line
// (then buys when it is the shopper's turn) and a panel under the price tells where they stand.
function inLiveDrop(product) {
  return Boolean(product.drop && !product.drop.endedAt);
}

export function productCard(product, { onAdd }) {
  const titleId = `product-${product.id}-name`;
  // The visible label stays short; the accessible name also says which product.
  const button = h(
    "button",
    { type: "button", class: "button primary add-button" },
    h("span", { class: "label" }, "Add to cart"),
    h("span", { class: "visually-hidden" }, `: ${product.name}`),
  );
  button.addEventListener("click", () => onAdd(product, button));
  const drop = inLiveDrop(product);
  const card = h(
    "li",
    {
      class: drop ? "product-card in-drop" : "product-card",
      dataset: drop ? { productId: product.id, dropId: product.drop.id } : { productId: product.id },
      "aria-labelledby": titleId,
    },
    h(
      "div",
      { class: "product-media" },
      productArt(product.name, product.sku),
      h("span", { class: "stock-badge", "aria-hidden": "true" }),
    ),
    h(
      "div",
      { class: "product-body" },
      h("h3", { class: "product-name", id: titleId }, product.name),
      product.description ? h("p", { class: "product-description" }, product.description) : null,
      product.maxPerCustomer
        ? h("p", { class: "limit" }, `Limit ${product.maxPerCustomer} per customer`)
        : null,
      h(
        "div",
        { class: "product-meta" },
        h("p", { class: "price" }, money(product.priceCents, product.currency)),
        h("p", { class: "stock" }),
      ),
      drop ? h("div", { class: "drop-panel" }) : null,
      button,
    ),
  );
  setCardStock(card, product.available);
  return card;
}

export function setCardStock(card, available) {
  const soldOut = available <= 0;
  const low = !soldOut && available <= LOW_STOCK;
  card.dataset.available = String(available);
  card.classList.toggle("is-sold-out", soldOut);
  card.classList.toggle("is-low", low);
  const badge = card.querySelector(".stock-badge");
  badge.textContent = soldOut ? "Sold out" : low ? `Only ${available} left` : "";
  badge.hidden = !soldOut && !low;
  const stock = card.querySelector(".stock");
  stock.textContent = stockWords(available);
  const button = card.querySelector(".add-button");
  // In a drop the line decides what the button does (drops.js).
  if (!button.dataset.busy && !card.dataset.dropId) {
    button.disabled = soldOut;
    setButtonLabel(button, soldOut ? "Sold out" : "Add to cart");
  }
}

export function setButtonLabel(button, text) {
  button.querySelector(".label").textContent = text;
}

export function skeletonCards(count) {
  return Array.from({ length: count }, () =>
    h(
      "li",
      { class: "product-card skeleton", "aria-hidden": "true" },
      h("div", { class: "product-media" }),
      h("div", { class: "product-body" }, h("div", { class: "bar wide" }), h("div", { class: "bar" })),
    ),
  );
}

// --- cart ----------------------------------------------------------------------------------------

export function cartLine(line, available, { onQuantity, onRemove }) {
  const { product, quantity } = line;
  const qtyId = `qty-${product.id}`;
  const input = h("input", {
    id: qtyId,
    class: "qty-input",
    type: "number",
    inputmode: "numeric",
    min: "1",
    max: "100",
    value: String(quantity),
  });
  input.addEventListener("change", () => {
    const value = Number.parseInt(input.value, 10);
    if (Number.isFinite(value) && value !== quantity) onQuantity(product, Math.max(0, Math.min(100, value)));
    else input.value = String(quantity);
  });
  let warning = null;
  if (available != null && available <= 0) warning = "Sold out: remove it to check out";
  else if (available != null && available < quantity) warning = `Only ${available} left`;
  else if (product.maxPerCustomer && quantity > product.maxPerCustomer) {
    warning = `Limit ${product.maxPerCustomer} per customer`;
  }
  return h(
    "li",
    { class: "cart-line", dataset: { productId: product.id } },
    h("div", { class: "cart-thumb" }, productArt(product.name, product.sku)),
    h(
      "div",
      { class: "cart-line-main" },
      h("p", { class: "cart-line-name" }, product.name),
      h("p", { class: "cart-line-unit" }, `${money(product.priceCents, product.currency)} each`),
      warning ? h("p", { class: "cart-line-warning" }, warning) : null,
      h(
        "div",
        { class: "qty" },
        h(
          "button",
          {
            type: "button",
            class: "qty-step",
            "aria-label": `Decrease quantity of ${product.name}`,
            onclick: () => onQuantity(product, quantity - 1),
          },
          "−",
        ),
        h("label", { class: "visually-hidden", for: qtyId }, `Quantity of ${product.name}`),
        input,
        h(
          "button",
          {
            type: "button",
            class: "qty-step",
            "aria-label": `Increase quantity of ${product.name}`,
            disabled: quantity >= 100,
            onclick: () => onQuantity(product, quantity + 1),
          },
          "+",
        ),
      ),
    ),
    h(
      "div",
      { class: "cart-line-side" },
      h("p", { class: "cart-line-total" }, money(line.lineTotalCents, product.currency)),
      h(
        "button",
        { type: "button", class: "link-button", "aria-label": `Remove ${product.name}`, onclick: () => onRemove(product) },
        "Remove",
      ),
    ),
  );
}

// --- orders --------------------------------------------------------------------------------------

export function statusBadge(order) {
  return h(
    "span",
    { class: "status-badge", dataset: { status: order.status } },
    statusLabel(order.status, order.cancelReason),
  );
}

export function orderSummaryText(order) {
  const items = order.lines.reduce((n, line) => n + line.quantity, 0);
  return `${plural(items, "item")} · ${money(order.totalCents, order.currency)}`;
}

export function orderListItem(order, { onOpen }) {
  const names = order.lines.map((l) => (l.quantity > 1 ? `${l.product.name} × ${l.quantity}` : l.product.name));
  return h(
    "li",
    { class: "order-row", dataset: { orderId: order.id } },
    h(
      "div",
      { class: "order-row-main" },
      h("p", { class: "order-row-ref" }, `Order #${orderRef(order.id)}`),
      h("p", { class: "order-row-date" }, dateTime(order.createdAt)),
      h("p", { class: "order-row-items" }, names.join(", ")),
    ),
    h("p", { class: "order-row-total" }, orderSummaryText(order)),
    statusBadge(order),
    h(
      "button",
      {
        type: "button",
        class: "button secondary small",
        "aria-label": `View order ${orderRef(order.id)}`,
        onclick: () => onOpen(order),
      },
      "View",
    ),
  );
}

export function orderLines(order) {
  return h(
    "ul",
    { class: "order-lines" },
    order.lines.map((line) =>
      h(
        "li",
        { class: "order-line" },
        h("div", { class: "cart-thumb small" }, productArt(line.product.name, line.product.sku)),
        h("span", { class: "order-line-name" }, line.product.name),
        h("span", { class: "order-line-qty" }, `× ${line.quantity}`),
        h("span", { class: "order-line-total" }, money(line.unitPriceCents * line.quantity, order.currency)),
      ),
    ),
  );
}

export function expiryText(order, now = Date.now()) {
  if (order.status !== "PENDING") return "";
  const left = new Date(order.expiresAt).getTime() - now;
  if (!(left > 0)) return "Time's up: this order is being released.";
  return `Your items are held for ${countdown(left)}. Pay before then to keep them.`;
}
