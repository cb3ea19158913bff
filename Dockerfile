# The production image: the package installed from a wheel (not editable, no source tree), without
# the `embedded` extra (DATABASE_URL and REDIS_URL point at real servers), run as a non-root user.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schema schema
COPY resolvers resolvers
COPY jobs jobs
COPY db db
COPY server server
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
# RUSHCART_DATA_DIR: where `rushcart serve` keeps its processes' shared metric samples, the only
# thing it writes; the user's home, as the installed package's own folder is not writable.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 RUSHCART_DATA_DIR=/var/lib/rushcart
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/rushcart --create-home --shell /usr/sbin/nologin rushcart
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels rushcart && rm -rf /tmp/wheels
USER rushcart
WORKDIR /var/lib/rushcart
EXPOSE 8000
CMD ["rushcart", "serve", "--host", "0.0.0.0"]
