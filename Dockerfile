# Image for the worker and the sink in docker-compose.yml: builds the abi3
# wheel (Rust core in release mode) and installs it with pinned dependencies.
FROM rust:1.85-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/build && /opt/build/bin/pip install maturin==1.16.0 \
    && /opt/build/bin/maturin build --release --out /wheels

FROM python:3.11-slim
COPY --from=build /wheels /wheels
COPY constraints.txt /constraints.txt
RUN pip install --no-cache-dir -c /constraints.txt /wheels/*.whl
ENTRYPOINT []
