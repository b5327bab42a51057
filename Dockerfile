# Image for the worker and the sink in docker-compose.yml: builds the abi3
# wheel (Rust core in release mode) and installs it with pinned dependencies.
# The build context is filtered by .dockerignore: no virtualenv, build output,
# local data (.ringtally/ holds secret keys) or .env reaches it.
FROM rust:1.85-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/build && /opt/build/bin/pip install maturin==1.16.0 \
    && /opt/build/bin/maturin build --release --out /wheels

FROM python:3.11-slim
COPY --from=build /wheels /wheels
COPY constraints.txt /constraints.txt
RUN pip install --no-cache-dir -c /constraints.txt /wheels/*.whl && rm -rf /wheels
# Runs as an unprivileged user; its data directory (table stores) is the one
# directory it may write, and a named volume mounted there inherits its owner.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ringtally --shell /usr/sbin/nologin ringtally \
    && install -d -o ringtally -g ringtally -m 0700 /var/lib/ringtally
USER ringtally:ringtally
WORKDIR /var/lib/ringtally
ENV RINGTALLY_DATA_DIR=/var/lib/ringtally
ENTRYPOINT []
