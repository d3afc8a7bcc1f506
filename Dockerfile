# Two images from one file:
#   docker build -t streamserve:0.1.0 .                        # River learners (last stage)
#   docker build --target torch -t streamserve:0.1.0-torch .   # plus PyTorch, CPU build
# Teams bring their module factories by building FROM the torch image and copying (or
# pip-installing) their package; config names the factory (learner: mypkg.models:build_net).
FROM python:3.11-slim AS base
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamserve ./streamserve
COPY topics ./topics
ENV STREAMSERVE_TOPICS_DIR=/app/topics
EXPOSE 9100 8080
ENTRYPOINT ["streamserve"]

# PyTorch's CPU wheels come from its own index (PyPI's torch pulls a CUDA build of several
# GB); the torch extra then finds torch installed and adds safetensors from PyPI.
FROM base AS torch
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# ".[torch,files]" is this project (its dependencies are bounded in pyproject.toml), which
# hadolint does not tell from an unpinned package name.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && pip install --no-cache-dir ".[torch,files]"
# Online models are small and their batches short: one intra-op thread per process is
# faster than several; raise it for large modules.
ENV OMP_NUM_THREADS=1
USER 65534:65534

FROM base AS default
# ".[files]": this project with pyarrow, so score-file and backfill read Parquet too.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[files]"
USER 65534:65534
