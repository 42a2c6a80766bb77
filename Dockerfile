# One image for every platform service of the full stack (API, console, MLflow server, Prefect server
# and worker): the pinned runtime set of requirements.txt and the `core` package. Multi-stage: the
# build tools stay in the first stage; the service runs as a non-root user.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY pyproject.toml README.md ./
COPY core ./core
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
# curl for health checks; libgomp for scikit-learn's OpenMP
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin rakuten
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RAKUTEN_ROOT=/app \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
WORKDIR /app
COPY --chown=rakuten:rakuten app ./app
COPY --chown=rakuten:rakuten pages ./pages
COPY --chown=rakuten:rakuten core ./core
COPY --chown=rakuten:rakuten params.yaml prefect.yaml dvc.yaml ./
RUN mkdir -p data/raw data/interim data/processed models reports secrets \
 && chown -R rakuten:rakuten /app
USER rakuten
EXPOSE 8000 8501
CMD ["python", "-m", "core", "serve", "--host", "0.0.0.0", "--port", "8000"]
