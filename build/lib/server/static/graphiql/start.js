// Starts GraphiQL on /graphql: queries and mutations over HTTP, subscriptions over WebSocket.
"use strict";
(function () {
  const HEADERS_KEY = "graphiql:headers";
  const graphqlUrl = new URL(document.getElementById("graphiql").dataset.endpoint, window.location.href);
  const subscriptionUrl = new URL(graphqlUrl);
  subscriptionUrl.protocol = graphqlUrl.protocol === "https:" ? "wss:" : "ws:";

  // Not `query`: a GET of /graphql with a `query` parameter runs it instead of opening GraphiQL.
  const parameters = new URLSearchParams(window.location.search);

  function remember(name, value) {
    if (value) {
      parameters.set(name, value);
    } else {
      parameters.delete(name);
    }
    history.replaceState(null, "", "?" + parameters.toString());
  }

  // GraphiQL sends the headers editor's content over HTTP only; a WebSocket cannot carry headers,
  // so the same headers go in connection_init, where the server reads Authorization.
  function storedHeaders() {
    try {
      return JSON.parse(localStorage.getItem(HEADERS_KEY) || "{}");
    } catch (error) {
      return {};
    }
  }

  const fetcher = GraphiQL.createFetcher({
    url: graphqlUrl.toString(),
    subscriptionUrl: subscriptionUrl.toString(),
    wsConnectionParams: storedHeaders,
  });

  function RushcartGraphiQL() {
    const explorer = React.useMemo(() => GraphiQLPluginExplorer.explorerPlugin(), []);
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      defaultEditorToolsVisibility: true,
      query: parameters.get("q") || undefined,
      variables: parameters.get("variables") || undefined,
      onEditQuery: (query) => remember("q", query),
      onEditVariables: (variables) => remember("variables", variables),
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(RushcartGraphiQL));
})();
