"""The Starlette app, settings, lifespan, CLI, and the embedded PostgreSQL and Redis launcher."""
