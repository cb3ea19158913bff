// The GraphQL documents the storefront sends; all of them are in the public contract (API.md).

const PRODUCT = "id sku name description priceCents currency available maxPerCustomer imageUrl";
const CART = `lines { quantity lineTotalCents product { ${PRODUCT} } } totalQuantity subtotalCents currency`;
const ERRORS = "errors { code message field productId available }";
const ORDER = `id status cancelReason needsRefund totalCents currency createdAt expiresAt paidAt cancelledAt
  lines { quantity unitPriceCents product { id name sku priceCents currency } }`;

// The catalogue also says which products are in a live drop (sold through a waiting line).
const DROP = "drop { id name startsAt endedAt passTtlSeconds }";

export const PRODUCTS = `query Products($first: Int!, $after: String, $search: String) {
  products(first: $first, after: $after, search: $search) {
    edges { node { ${PRODUCT} ${DROP} } }
    pageInfo { endCursor hasNextPage }
  }
}`;

export const START_SESSION = "mutation StartSession { startSession { sessionId } }";

export const ME_AND_CART = `query MeAndCart { me { id email } cart { ${CART} } }`;

export const CART_QUERY = `query Cart { cart { ${CART} } }`;

export const CART_ADD = `mutation CartAdd($productId: ID!, $quantity: Int!) {
  cartAddLine(productId: $productId, quantity: $quantity) { cart { ${CART} } ${ERRORS} }
}`;

export const CART_UPDATE = `mutation CartUpdate($productId: ID!, $quantity: Int!) {
  cartUpdateLine(productId: $productId, quantity: $quantity) { cart { ${CART} } ${ERRORS} }
}`;

export const CART_REMOVE = `mutation CartRemove($productId: ID!) {
  cartRemoveLine(productId: $productId) { cart { ${CART} } ${ERRORS} }
}`;

export const CART_CLEAR = `mutation CartClear { cartClear { cart { ${CART} } ${ERRORS} } }`;

const AUTH_RESULT = `token customer { id email } cart { ${CART} }
  cartMerge { strategy guestLines linesAdded linesCombined linesCapped } ${ERRORS}`;

export const REGISTER = `mutation Register($email: String!, $password: String!) {
  register(email: $email, password: $password) { ${AUTH_RESULT} }
}`;

export const LOGIN = `mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password, cartMerge: MERGE) { ${AUTH_RESULT} }
}`;

export const LOGOUT = "mutation Logout { logout }";

export const CHECKOUT = `mutation Checkout($key: String!) {
  checkout(idempotencyKey: $key) { order { ${ORDER} } ${ERRORS} }
}`;

export const CANCEL_ORDER = `mutation CancelOrder($id: ID!) {
  cancelOrder(id: $id) { order { ${ORDER} } ${ERRORS} }
}`;

export const PLACE_ORDER = `mutation PlaceOrder($lines: [OrderLineInput!]!, $key: String!) {
  placeOrder(lines: $lines, idempotencyKey: $key) { order { ${ORDER} } errors { code message field productId available position } }
}`;

// A drop's waiting line: the shopper's place, joined over HTTP, followed over the WebSocket.
const LINE = "dropId status position ahead estimatedWaitSeconds unitsLeft lineLength passExpiresAt";

export const JOIN_DROP = `mutation JoinDrop($dropId: ID!) {
  joinDrop(dropId: $dropId) { line { ${LINE} } errors { code message } }
}`;

export const DROP_LINE_QUERY = `query DropLine($dropId: ID!) { dropLine(dropId: $dropId) { ${LINE} } }`;

export const DROP_LINE_SUB = `subscription DropLine($dropId: ID!) { dropLine(dropId: $dropId) { ${LINE} } }`;

export const ORDER_QUERY = `query Order($id: ID!) { order(id: $id) { ${ORDER} } }`;

export const ORDER_STATUS_QUERY = "query OrderStatus($id: ID!) { order(id: $id) { id status cancelReason } }";

export const ORDERS = `query Orders($first: Int!) { orders(first: $first) { edges { node { ${ORDER} } } } }`;

export const PRODUCT_STOCK_SUB = `subscription ProductStock($productId: ID!) {
  productStock(productId: $productId) { productId available at }
}`;

export const ORDER_STATUS_SUB = `subscription OrderStatus($orderId: ID!) {
  orderStatus(orderId: $orderId) { orderId status cancelReason at }
}`;

// Polling fallback: several products in one request, as aliases of product(id) (the server
// limits aliases per document, so callers send at most STOCK_POLL_BATCH ids at a time).
export const STOCK_POLL_BATCH = 10;

export function stockPollQuery(count) {
  const vars = [];
  const fields = [];
  for (let i = 0; i < count; i += 1) {
    vars.push(`$p${i}: ID!`);
    fields.push(`p${i}: product(id: $p${i}) { id available }`);
  }
  return `query StockPoll(${vars.join(", ")}) { ${fields.join(" ")} }`;
}
