# rsg-operator image: `make image` (needs docker or podman; see README "Install on a cluster").
# Two stages: wheels are built with the build tools, the final stage only installs them.
ARG PYTHON_VERSION=3.11.7
ARG DEBIAN_RELEASE=bookworm

FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The lock first: the dependency layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY rsg_operator ./rsg_operator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}
# Installed from the wheels alone: no compiler, no pip cache, no sources in this stage.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl \
    && useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin rsg
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["rsg-operator", "run"]
