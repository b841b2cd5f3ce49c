# CPU worker image: slim Python + the project. Runs `prefect worker start --pool cpu-pool`
# (process worker); nightly-labeling flow runs are subprocesses in this container.
# Build from the repository root:  docker build -f infra/docker/cpu.Dockerfile -t ser-pipeline-cpu .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SER_PROJECT_DIR=/opt/ser-pipeline \
    TF_CPP_MIN_LOG_LEVEL=2

# libsndfile for soundfile's system fallback; tini reaps the flow-run subprocesses.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 ser
WORKDIR /opt/ser-pipeline

# Dependencies first (cached while only the code changes), pinned by constraints.txt.
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code (filtered by .dockerignore). An editable install keeps expectations/ and sql/ where
# ser_pipeline.resources looks for them: beside the package, in /opt/ser-pipeline.
COPY . .
RUN pip install --no-deps -e . && chown -R ser:ser /opt/ser-pipeline

USER 10001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["prefect", "worker", "start", "--pool", "cpu-pool", "--type", "process"]
