# The Hearth app image: the wheel built from the source, installed like any package, run from an empty
# directory. It migrates the database at HEARTH_DATABASE_URL, then serves.
# tests/test_install.py takes the same steps without Docker (build, install, migrate, serve).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY db ./db
# The JavaScript client, served at /v1/hearth-client.js (node_modules and tests stay out).
COPY clients/js/__init__.py clients/js/hearth-client.js clients/js/index.d.ts ./clients/js/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# psql, for `hearth sql`
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --no-create-home hearth
USER hearth
WORKDIR /srv/hearth
ENV HEARTH_HOST=0.0.0.0 HEARTH_PORT=8000
EXPOSE 8000
CMD ["sh", "-c", "hearth migrate && exec hearth serve"]
