# syntax=docker/dockerfile:1
# One image for GPU and CPU hosts: PyPI's torch is the CUDA build, which runs on the CPU when the
# container is given no GPU.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies before sources, so a code change rebuilds only the last layers.
COPY constraints.txt /src/
RUN pip install -c /src/constraints.txt torch torchvision
COPY pyproject.toml /src/
RUN python3 -c "import tomllib; deps = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('torch')))" > /tmp/requirements.txt \
    && pip install -c /src/constraints.txt -r /tmp/requirements.txt
COPY README.md /src/
COPY model /src/model
COPY app /src/app
RUN pip install --no-deps /src

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8000 WORKERS=1
USER app
WORKDIR /home/app
# Training output; a named volume mounted here starts out owned by the app user.
RUN mkdir -p /home/app/runs
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD python3 -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ['PORT'], timeout=4)"
# app.serve is uvicorn with header and shutdown deadlines and a connection cap; it reads HOST,
# PORT and WORKERS from the environment.
CMD ["python3", "-m", "app.serve"]
