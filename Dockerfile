# The Hearth app image: migrates the database at HEARTH_DATABASE_URL, then serves.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/hearth
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY db ./db
RUN pip install --no-cache-dir .
ENV HEARTH_HOST=0.0.0.0 HEARTH_PORT=8000
EXPOSE 8000
CMD ["sh", "-c", "hearth migrate && exec hearth serve"]
