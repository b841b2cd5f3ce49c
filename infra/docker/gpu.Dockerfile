# GPU job image for the weekly-retrain deployment: TensorFlow's CUDA image + the project.
# The Kubernetes worker (prefect-kubernetes, in its own image) starts one Job per flow run in
# this image on a node with `nvidia.com/gpu` (see infra/work-pools/gpu-kubernetes.json).
# Build from the repository root:  docker build -f infra/docker/gpu.Dockerfile -t ser-pipeline-gpu .
FROM tensorflow/tensorflow:2.20.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SER_PROJECT_DIR=/opt/ser-pipeline \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    TF_CPP_MIN_LOG_LEVEL=2

RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 ser
WORKDIR /opt/ser-pipeline

# TensorFlow with CUDA comes with the base image: install every other dependency, pinned, and
# never the CPU-only TensorFlow wheel the default dependency list names on x86_64.
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('tensorflow')))" > /tmp/requirements.txt \
    && grep -v -i -E '^(tensorflow|tensorflow_cpu|tensorflow-cpu)==' constraints.txt > /tmp/constraints.txt \
    && pip install -c /tmp/constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/constraints.txt

# The code (filtered by .dockerignore). An editable install keeps expectations/ and sql/ where
# ser_pipeline.resources looks for them: beside the package, in /opt/ser-pipeline.
COPY . .
RUN pip install --no-deps -e . && chown -R ser:ser /opt/ser-pipeline

USER 10001
# The Kubernetes worker supplies the command (`prefect flow-run execute`); this is for debugging.
CMD ["python", "-c", "import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))"]
