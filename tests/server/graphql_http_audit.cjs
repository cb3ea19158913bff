// Runs the graphql-http package's GraphQL-over-HTTP server audits against a live server.
// usage: node graphql_http_audit.cjs <folder holding node_modules/graphql-http> <graphql url>
// Prints one JSON array: {id, name, status, reason} per audit.
"use strict";
const path = require("node:path");
const { createRequire } = require("node:module");

async function main() {
  const [prefix, url] = process.argv.slice(2);
  const { serverAudits } = createRequire(path.join(path.resolve(prefix), "package.json"))("graphql-http");
  const results = [];
  for (const audit of serverAudits({ url })) {
    const result = await audit.fn();
    results.push({ id: result.id, name: result.name, status: result.status, reason: result.reason || null });
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
