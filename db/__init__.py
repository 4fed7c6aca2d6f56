"""Hearth's SQL: the declared schema (schema.sql), the function files (functions/) and the alembic
migrations (migrations/). Not Python code: the wheel ships this folder as the package `app.sql`
(pyproject.toml maps it), and app/sqlfiles.py finds it with importlib.resources, in a checkout and in an
installed package alike."""
