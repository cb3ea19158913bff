// The cart drawer: lines, quantities, checkout.

import { ensureSession, openAuth, tokenExpired } from "./account.js";
import { graphql, identity } from "./api.js";
import { announce, closeDialog, h, openDialog } from "./dom.js";
import { setStock, stockFeed, watchStock } from "./feeds.js";
import { money, orderRef, plural, userErrorText } from "./format.js";
import { openOrder, rememberOrder } from "./orders.js";
import * as Q from "./queries.js";
import { el, errorText, newKey, productNames, state } from "./store.js";
import { cartLine, setButtonLabel, setCardStock } from "./views.js";

export function emptyCart() {
  return { lines: [], totalQuantity: 0, subtotalCents: 0, currency: "USD" };
}

export function setCart(cart) {
  state.cart = cart || emptyCart();
  for (const line of state.cart.lines) {
    const id = String(line.product.id);
    if (!state.products.has(id)) state.products.set(id, line.product);
    if (!stockFeed.isLive(id)) setStock(id, line.product.available);
  }
  renderCartBadge();
  renderCart();
  watchStock();
}

function renderCartBadge() {
  const count = state.cart?.totalQuantity || 0;
  el.cartCount.textContent = String(count);
  el.cartCount.dataset.count = String(count);
  el.cartButton.setAttribute("aria-label", `Cart, ${plural(count, "item")}`);
}

function bumpBadge() {
  el.cartCount.classList.remove("bump");
  void el.cartCount.offsetWidth; // restart the animation
  el.cartCount.classList.add("bump");
}

export function renderCart() {
  const cart = state.cart || emptyCart();
  // Keep keyboard focus on the same control across the re-render.
  const focused = el.cartLines.contains(document.activeElement)
    ? document.activeElement.getAttribute("aria-label") || document.activeElement.id
    : null;
  el.cartLines.replaceChildren(
    ...cart.lines.map((line) =>
      cartLine(line, state.stock.get(String(line.product.id)), { onQuantity: changeQuantity, onRemove: removeLine }),
    ),
  );
  if (focused) {
    const again = [...el.cartLines.querySelectorAll("button, input")].find(
      (c) => c.getAttribute("aria-label") === focused || c.id === focused,
    );
    (again && !again.disabled ? again : el.drawer.querySelector("[data-close]"))?.focus();
  }
  const empty = cart.lines.length === 0;
  el.cartEmpty.hidden = !empty;
  el.cartFooter.hidden = empty;
  el.cartSubtotal.textContent = money(cart.subtotalCents, cart.currency);
  el.cartSummary.textContent = empty
    ? "Your cart is empty."
    : `${plural(cart.totalQuantity, "item")}, subtotal ${money(cart.subtotalCents, cart.currency)}.`;
  el.checkoutButton.textContent = state.me ? "Check out" : "Sign in to check out";
  el.cartNotice.textContent = state.cartNotice;
  el.cartNotice.hidden = !state.cartNotice;
}

export function renderCartWarnings() {
  // Stock changed under an open cart: redraw unless the shopper is typing a quantity.
  if (document.activeElement?.classList.contains("qty-input")) return;
  renderCart();
}

export async function loadCart() {
  try {
    const data = await graphql(Q.CART_QUERY);
    setCart(data.cart);
  } catch (err) {
    announce(errorText(err), "error");
  }
}

// Runs a cart mutation as the current shopper; a guest whose session the server forgot gets a
// new one and the change is tried once more.
async function cartMutation(mutation, variables, field) {
  await ensureSession();
  let payload = (await graphql(mutation, variables))[field];
  if (payload.errors.some((e) => e.code === "NOT_AUTHENTICATED")) {
    if (identity.signedIn) {
      await tokenExpired();
      return payload.errors;
    }
    identity.sessionId = null;
    await ensureSession();
    payload = (await graphql(mutation, variables))[field];
  }
  if (payload.cart) {
    state.cartNotice = "";
    setCart(payload.cart);
  }
  return payload.errors;
}

export async function addToCart(product, button) {
  button.dataset.busy = "1";
  button.disabled = true;
  setButtonLabel(button, "Adding…");
  let ok = false;
  try {
    const errors = await cartMutation(Q.CART_ADD, { productId: product.id, quantity: 1 }, "cartAddLine");
    if (errors.length) {
      announce(errors.map((e) => userErrorText(e, productNames())).join(" "), "error");
    } else {
      ok = true;
      bumpBadge();
      announce(`Added ${product.name} to your cart.`, "success");
    }
  } catch (err) {
    announce(errorText(err), "error");
  }
  setButtonLabel(button, ok ? "Added ✓" : "Add to cart");
  setTimeout(
    () => {
      delete button.dataset.busy;
      const card = state.cards.get(String(product.id));
      if (card) setCardStock(card, state.stock.get(String(product.id)) ?? product.available);
    },
    ok ? 1200 : 0,
  );
}

async function runCartChange(mutation, variables, field) {
  el.cartError.textContent = "";
  try {
    const errors = await cartMutation(mutation, variables, field);
    if (errors.length) el.cartError.textContent = errors.map((e) => userErrorText(e, productNames())).join(" ");
  } catch (err) {
    el.cartError.textContent = errorText(err);
  }
}

function changeQuantity(product, quantity) {
  if (quantity <= 0) return removeLine(product);
  return runCartChange(Q.CART_UPDATE, { productId: product.id, quantity }, "cartUpdateLine");
}

async function removeLine(product) {
  await runCartChange(Q.CART_REMOVE, { productId: product.id }, "cartRemoveLine");
  announce(`Removed ${product.name} from your cart.`);
}

export async function clearCart() {
  await runCartChange(Q.CART_CLEAR, {}, "cartClear");
  announce("Your cart is empty now.");
}

export async function checkout() {
  el.cartError.textContent = "";
  if (!state.me) {
    state.afterAuth = "cart";
    openAuth("signin", "Sign in or create an account to check out. Anything in your cart comes with you.");
    return;
  }
  const button = el.checkoutButton;
  button.disabled = true;
  button.textContent = "Placing your order…";
  try {
    const data = await graphql(Q.CHECKOUT, { key: newKey() });
    const { order, errors } = data.checkout;
    if (errors.length) {
      if (errors.some((e) => e.code === "NOT_AUTHENTICATED")) {
        await tokenExpired();
        state.afterAuth = "cart";
        openAuth("signin", "Please sign in again to check out. Your cart is saved.");
        return;
      }
      const names = productNames();
      el.cartError.replaceChildren(
        h("p", {}, "We couldn't place your order:"),
        h("ul", {}, errors.map((e) => h("li", {}, userErrorText(e, names)))),
      );
      loadCart(); // fresh stock numbers next to the lines
      return;
    }
    state.cartNotice = "";
    setCart(emptyCart());
    rememberOrder(order);
    closeDialog(el.drawer);
    openOrder(order.id);
    announce(`Order #${orderRef(order.id)} placed. Your items are held while you pay.`, "success");
  } catch (err) {
    el.cartError.textContent = errorText(err);
  } finally {
    button.disabled = false;
    button.textContent = state.me ? "Check out" : "Sign in to check out";
  }
}

export function wireCart() {
  el.cartButton.addEventListener("click", () => {
    el.cartError.textContent = "";
    renderCart();
    openDialog(el.drawer);
  });
  el.checkoutButton.addEventListener("click", checkout);
  el.clearCart.addEventListener("click", clearCart);
}
