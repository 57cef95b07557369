# syntax=docker/dockerfile:1
# CovetPy in a container: stage 1 builds the wheel (C++ engine + pybind11 extension) on Debian bookworm,
# stage 2 runs it on the same Python image with only the shared libraries the extension loads.
#
#   docker build -t covetpy .
#   docker run --rm -p 8000:8000 -p 9000:9000 covetpy          # the example app (examples/python/hello.py)
#   curl localhost:8000/json; curl localhost:9000/_health; curl localhost:9000/_metrics
#
# Your app: build FROM this image, COPY it to /app and set CMD (docs/operations.md, "Containers and
# Kubernetes"). Both stages use one Python image: the wheel's ABI tag and the runtime's interpreter must match.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- stage 1: the wheels -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
# The -dev packages of scripts/setup.sh (headers; spdlog/fmt/boost are header-only here, llhttp is compiled
# from node-llhttp's C sources into the extension). Not pinned to versions (DL3008): the bookworm image and
# its security updates move together, and a pinned version vanishes from the archive once superseded.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      liburing-dev libboost-dev libspdlog-dev libfmt-dev node-llhttp \
      libssl-dev libnghttp2-dev zlib1g-dev libbrotli-dev libzstd-dev \
      libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the wheel is built from (pyproject.toml's scikit-build settings), so a change to the docs, the
# tests or the benchmarks does not rebuild the engine.
COPY pyproject.toml CMakeLists.txt README.md LICENSE ./
COPY cmake/ cmake/
COPY include/ include/
COPY src/ src/
COPY bindings/ bindings/
# covetpy's wheel and those of its dependencies (pydantic, orjson, uvloop: the `speed` extra), so the runtime
# stage installs from /wheels without a compiler.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[speed]"

# ---- stage 2: the runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# The shared libraries covet/_native*.so needs (ldd; libstdc++ and libgcc are linked in statically):
# liburing, OpenSSL, nghttp2, ngtcp2 (+ its GnuTLS helper), nghttp3, GnuTLS (and the libraries it loads:
# nettle, gmp, p11-kit, tasn1, unistring, idn2, ffi), zlib, brotli, zstd. tests/deploy/test_dockerfile.py checks this list against
# ldd of a built extension.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      liburing2 libssl3 libnghttp2-14 libngtcp2-9 libngtcp2-crypto-gnutls2 libnghttp3-3 libgnutls30 \
      libnettle8 libhogweed6 libgmp10 libp11-kit0 libtasn1-6 libunistring2 libidn2-0 libffi8 \
      zlib1g libbrotli1 libzstd1 \
 && rm -rf /var/lib/apt/lists/*
# Exactly the wheels stage 1 built (--no-index): nothing to pin (DL3013).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "covetpy[speed]"
# A fixed numeric id, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 covet \
 && useradd --system --uid 10001 --gid covet --home-dir /app --no-create-home --shell /usr/sbin/nologin covet
WORKDIR /app
COPY --chown=root:root examples/python/hello.py /app/hello.py
# Bytecode is not written (the root filesystem may be read-only); logs are not buffered.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# 8000: the app; 9000: the operations listener (/_health, /_ready, /_metrics), never shared with user traffic.
# It listens on 127.0.0.1 unless --ops-host says otherwise: 0.0.0.0 in CMD, since Kubernetes' probes and
# Prometheus connect to the container's address (publish 9000 only where they run).
EXPOSE 8000 9000
# Liveness as Kubernetes checks it (the image has no curl: Python's urllib).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9000/_health', timeout=2).status != 200)"]
# The master process handles SIGTERM (graceful drain of every worker), so it runs as PID 1 directly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["covet", "run"]
CMD ["hello:app", "--app-dir", "/app", "--host", "0.0.0.0", "--port", "8000", "--workers", "auto", "--ops-port", "9000", "--ops-host", "0.0.0.0"]
