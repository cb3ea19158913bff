// Turning API values into words, prices, dates and pictures a shopper understands.

const LOCALE = navigator.language || "en-US";
const moneyFormats = new Map();

export function money(cents, currency = "USD") {
  if (!moneyFormats.has(currency)) {
    let format;
    try {
      format = new Intl.NumberFormat(LOCALE, { style: "currency", currency });
    } catch {
      format = { format: (n) => `${n.toFixed(2)} ${currency}` };
    }
    moneyFormats.set(currency, format);
  }
  return moneyFormats.get(currency).format(cents / 100);
}

const dateFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short" });

export function dateTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : dateFormat.format(date);
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

// "1F0C3A2B": order ids are UUIDv7, whose first digits are a timestamp shared by orders placed
// close together, so the shopper-facing reference is the random tail.
export function orderRef(id) {
  return String(id).replace(/-/g, "").slice(-8).toUpperCase();
}

export function countdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return `${minutes}:${seconds}`;
}

export const LOW_STOCK = 10;

export function stockWords(available) {
  if (available <= 0) return "Sold out";
  if (available <= LOW_STOCK) return `Only ${available} left`;
  return `${available} in stock`;
}

// --- orders ----------------------------------------------------------------------------------

const CANCELLED_LABELS = {
  EXPIRED: "Cancelled: not paid in time",
  PAYMENT_FAILED: "Cancelled: payment failed",
  CUSTOMER: "Cancelled by you",
  STAFF: "Cancelled by the shop",
};

export function statusLabel(status, cancelReason) {
  if (status === "PAID") return "Paid";
  if (status === "PENDING") return "Awaiting payment";
  if (status === "CANCELLED") return CANCELLED_LABELS[cancelReason] || "Cancelled";
  return status || "Unknown";
}

// --- errors and reports in words -------------------------------------------------------------

// `names` maps product ids to names, for errors that only carry a productId.
export function userErrorText(error, names = new Map()) {
  const name = (error.productId && names.get(String(error.productId))) || "this product";
  switch (error.code) {
    case "OUT_OF_STOCK":
      if (error.available == null) return `${name} doesn't have enough stock left.`;
      return error.available > 0 ? `Only ${error.available} left of ${name}.` : `${name} is sold out.`;
    case "PURCHASE_LIMIT_EXCEEDED":
      if (error.available == null) return `You've reached the purchase limit for ${name}.`;
      return error.available > 0
        ? `You can buy ${error.available} more of ${name}.`
        : `You can't buy any more of ${name}: you've reached the limit per customer.`;
    case "NOT_AUTHENTICATED":
      return "Please sign in to continue.";
    case "EMPTY_CART":
      return "Your cart is empty.";
    case "EMAIL_TAKEN":
      return "An account with this email already exists. Try signing in instead.";
    case "INVALID_CREDENTIALS":
      return "That email and password don't match. Please try again.";
    case "RATE_LIMITED":
      return "Too many attempts. Please wait a few minutes and try again.";
    case "PRODUCT_NOT_FOUND":
      return "This product is no longer available.";
    case "ORDER_NOT_CANCELLABLE":
      return "This order can no longer be cancelled.";
    case "NOT_YOUR_TURN":
      return error.position != null
        ? `It's not your turn for ${name} yet: you're number ${error.position} in line.`
        : `${name} is sold through the drop's line: join it and buy when it's your turn.`;
    case "IDEMPOTENCY_KEY_REUSED":
      return "Your cart changed while checking out. Please try again.";
    default: {
      const message = error.message || "Something went wrong.";
      return message.charAt(0).toUpperCase() + message.slice(1) + (/[.!?]$/.test(message) ? "" : ".");
    }
  }
}

// "Your cart from this visit was added: 2 lines added, 1 combined."
export function mergeReportText(report) {
  if (!report || !report.guestLines) return "";
  const parts = [];
  if (report.linesAdded) parts.push(`${plural(report.linesAdded, "line")} added`);
  if (report.linesCombined) parts.push(`${report.linesCombined} combined`);
  if (report.linesCapped && report.linesCapped.length) {
    parts.push(`${report.linesCapped.length} capped at the maximum quantity`);
  }
  if (report.strategy === "KEEP_CUSTOMER_CART") return "We kept the cart saved in your account.";
  if (!parts.length) return "Your cart is up to date.";
  return `Your guest cart was merged: ${parts.join(", ")}.`;
}

// --- generated product art -------------------------------------------------------------------

function hash(text) {
  let h = 2166136261;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

export function initials(name) {
  const words = String(name).split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => w[0]);
  return (letters.join("") || "?").toUpperCase();
}

const SVG_NS = "http://www.w3.org/2000/svg";

// An SVG tile: a two-colour gradient chosen from the name, soft shapes, and the initials.
export function productArt(name, seed = name) {
  const h = hash(String(seed));
  const hue = h % 360;
  const hue2 = (hue + 35 + ((h >> 9) % 50)) % 360;
  const id = `g${h.toString(36)}`;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 400 300");
  svg.setAttribute("preserveAspectRatio", "xMidYMid slice");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("art");
  const shapes = [
    `<defs><linearGradient id="${id}" x1="0" y1="0" x2="1" y2="1">`,
    `<stop offset="0" stop-color="hsl(${hue} 70% 62%)"/><stop offset="1" stop-color="hsl(${hue2} 65% 40%)"/>`,
    "</linearGradient></defs>",
    `<rect width="400" height="300" fill="url(#${id})"/>`,
    `<circle cx="${320 - (h % 60)}" cy="${60 + ((h >> 4) % 50)}" r="${90 + ((h >> 8) % 40)}" fill="#fff" opacity=".12"/>`,
    `<circle cx="${60 + ((h >> 12) % 60)}" cy="${250 - ((h >> 16) % 40)}" r="${70 + ((h >> 20) % 30)}" fill="#000" opacity=".08"/>`,
  ].join("");
  svg.innerHTML = shapes;
  const text = document.createElementNS(SVG_NS, "text");
  text.setAttribute("x", "200");
  text.setAttribute("y", "150");
  text.setAttribute("text-anchor", "middle");
  text.setAttribute("dominant-baseline", "central");
  text.setAttribute("class", "art-initials");
  text.textContent = initials(name);
  svg.append(text);
  return svg;
}
