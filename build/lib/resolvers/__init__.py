"""Thin GraphQL resolvers, one module per area: they check arguments and call into db/ or jobs/."""
