"""Data at rest: PostgreSQL models and migrations, and the Redis side (keys, Lua scripts, stores)."""
