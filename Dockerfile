# oscar-stream image: the gateway, the workers, the dCache watcher and the in-pod helper (`oscar-stream job`).
# Where Docker/Podman runs:
#   docker build -t ghcr.io/oscar-stream/oscar-stream:0.1.0 .
# Pin the base image by digest in your registry mirror for reproducible builds (--build-arg BASE=...).
# The local stack's real node builds the same image without a container engine (oscar_stream/stack/node_images.py):
# a debootstrap of the machine's Debian release as BASE, these steps, and this file's final-stage ENV, USER,
# WORKDIR, ENTRYPOINT and CMD.
ARG BASE=python:3.11.14-slim-bookworm
FROM ${BASE} AS build
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt README.md ./
COPY oscar_stream ./oscar_stream
# Exact versions from constraints.txt; no build tools are needed (every dependency ships wheels).
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -c constraints.txt .

FROM ${BASE}
RUN groupadd --gid 10001 oscar && useradd --uid 10001 --gid oscar --no-create-home --shell /usr/sbin/nologin oscar
COPY --from=build /opt/venv /opt/venv
COPY topics /opt/oscar-stream/topics
ENV PATH=/opt/venv/bin:$PATH \
    OSCAR_STREAM_TOPICS_DIR=/opt/oscar-stream/topics \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/oscar-stream
ENTRYPOINT ["oscar-stream"]
CMD ["--help"]
