# syntax=docker/dockerfile:1
# One image for every tradebus service. The builder compiles the Cython engine into a wheel; the
# runtime has the installed virtualenv, a non-root user and no compilers.
#
#   docker build -t tradebus .                                    # official python:3.11-slim base
#   podman build --format docker --build-arg BASE_IMAGE=localhost/debian-py:bookworm \
#       --build-arg PIP_NO_INDEX=1 -t localhost/tradebus:dev .    # local base, wheels in deploy/wheels
#
# The base must give `python3` (3.11+) with the venv module and Debian's apt. Wheels put in
# deploy/wheels (`make wheels`) are used first; PIP_NO_INDEX=1 forbids any index (offline build),
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL pick another one.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG PIP_NO_INDEX
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_FIND_LINKS=/wheels
# A C compiler, OpenMP and (when the base has no Python headers, as Debian's python3 has not) them.
RUN apt-get update \
 && headers=$(python3 -c 'import os, sysconfig; print("" if os.path.exists(sysconfig.get_paths()["include"] + "/Python.h") else "python3-dev")') \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev libgomp1 binutils $headers \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/wheels/ /wheels/
RUN python3 -m venv /opt/build && /opt/build/bin/pip install "setuptools>=68" wheel "Cython>=3.0" "numpy>=1.26"
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY proto proto
COPY services services
COPY libs libs
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /dist .
# The runtime virtualenv, trimmed to stay small: no pip, no Cython (it compiles, it does not run),
# no matplotlib and its imaging stack (study reports are drawn by the CLI on an operator's
# machine; `tradebus study --no-report` works here), no tests, headers, caches or unused pyarrow
# parts (Flight RPC, S3). Shared objects are stripped except auditwheel-patched ones (numpy.libs
# and the like break when stripped). Bytecode is kept for tradebus and nats only, which every
# health check loads. The import check fails the build if a trim went too far.
RUN python3 -m venv --without-pip /opt/venv \
 && /opt/build/bin/pip --python /opt/venv/bin/python install /dist/tradebus-*.whl \
 && /opt/build/bin/pip --python /opt/venv/bin/python uninstall -y Cython matplotlib fonttools pillow kiwisolver contourpy cycler pyparsing \
 && site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && find "$site" -depth \( -name tests -o -name test -o -name __pycache__ \) -type d -exec rm -rf {} + \
 && rm -rf "$site"/pyarrow/include "$site"/pyarrow/src "$site"/numpy/_core/include "$site"/pyarrow/*flight* "$site"/pyarrow/*s3* \
 && find "$site" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' -o -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.a' \) -delete \
 && find "$site" -name '*.so*' -type f | while read -r so; do \
        top="${so#"$site"/}"; top="${top%%/*}"; \
        case "$top" in *.libs) continue ;; esac; \
        [ -d "$site/$top.libs" ] || strip --strip-unneeded "$so"; \
    done \
 && /opt/venv/bin/python -m compileall -q "$site"/tradebus "$site"/nats \
 && /opt/venv/bin/python -B -c "import tradebus.engine, tradebus.services.order_router, tradebus.services.backtest_worker, tradebus.cli.study, ccxt.pro, pyarrow.parquet, pyarrow.dataset, pandas, uvloop, nats"

FROM ${BASE_IMAGE} AS runtime
# libgomp: the engine's OpenMP runtime. Nothing else is added to the base.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/tradebus --shell /usr/sbin/nologin tradebus \
 && install -d -o tradebus -g tradebus /var/lib/nats  # JetStream store when the image runs nats-server
COPY --from=builder /opt/venv /opt/venv
COPY deploy/entrypoint.sh /usr/local/bin/tradebus-entrypoint
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRADEBUS_DATA_DIR=/data
USER tradebus
WORKDIR /home/tradebus
# The service of this container answers $SRV.PING on the bus (see `tradebus health`).
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 CMD ["python", "-m", "tradebus.cli.health"]
ENTRYPOINT ["tradebus-entrypoint"]
CMD ["tradebus", "--help"]
