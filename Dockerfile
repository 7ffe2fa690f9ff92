# The broadcaster image (DESIGN A15): `docker compose up -d` runs two of it on one PostgreSQL.
#
# - Pinned base: Python 3.11 on Debian 12. For a reproducible rebuild, pin the digest as well
#   (`docker pull python:3.11.11-slim-bookworm` prints it; write FROM python:...@sha256:...).
# - Everything is installed here, at build time, into /opt/broadcaster (a virtualenv): a container
#   never runs pip when it starts. All dependencies come as wheels (ffmpeg, espeak-ng, fonts
#   included), so the image needs no compiler.
# - tzdata: the town's time zone (timezone: Asia/Shanghai) is looked up in the system's zoneinfo.
# - It runs as the unprivileged user `broadcaster` (uid 10001), which owns only its data volume.
#
# Build: docker build -t broadcaster:0.1.0 .
# The shipped demo configuration is in /app/config; production mounts its own over it (compose).

FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TZ=Asia/Shanghai

RUN apt-get update \
    && apt-get install -y --no-install-recommends tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 broadcaster \
    && useradd --system --uid 10001 --gid broadcaster --home-dir /var/lib/broadcaster \
       --shell /usr/sbin/nologin broadcaster \
    && install -d -o broadcaster -g broadcaster -m 0750 /var/lib/broadcaster

# The package and its dependencies, from the source tree (sources first: a change of code
# reinstalls, a change of the configuration below does not).
COPY pyproject.toml README.md /src/
COPY broadcaster /src/broadcaster
RUN python -m venv /opt/broadcaster \
    && /opt/broadcaster/bin/pip install /src \
    && rm -rf /src \
    && /opt/broadcaster/bin/broadcaster --help > /dev/null

# Same layout as the repository, so that relative paths in the configuration (../audio/chime.wav)
# resolve the same way in and out of the container.
COPY config /app/config
COPY audio /app/audio
# The demo configuration keeps its ledger and cache in ../var: writable for the demo only.
RUN install -d -o broadcaster -g broadcaster -m 0750 /app/var

ENV PATH=/opt/broadcaster/bin:$PATH \
    BROADCASTER_CONFIG=/app/config/broadcaster.yaml \
    BROADCASTER_LISTEN=0.0.0.0:8080
WORKDIR /app
USER broadcaster
EXPOSE 8080
VOLUME ["/var/lib/broadcaster"]

# 200 on a leader and on a standby alike ({"status":"ok","role":...}); 503 without its ledger.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

# SIGTERM: in-flight sends finish, the leader lock is released (the other node leads within 2 s).
STOPSIGNAL SIGTERM
CMD ["broadcaster", "run"]
