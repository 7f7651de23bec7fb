# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target cpu -t fashion-resnet:cpu .   CPU hosts: ONNX Runtime, no torch, no CUDA
#   docker build -t fashion-resnet .                     GPU hosts and training: torch (CUDA build,
#                                                        which also runs on a CPU)
# The CPU image serves the ONNX graphs that the torch stage exports from the checkpoint.
# The GPU image is the torch stage itself plus a USER line: copying its 5.5 GB virtual environment
# into a fresh stage would store it twice while building (a CI build ran out of disk that way).

FROM python:3.11-slim AS base
RUN useradd --system --uid 10001 --create-home app \
    && install -d -o app -g app /home/app/runs
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8000 WORKERS=1
WORKDIR /home/app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD python3 -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ['PORT'], timeout=4)"
# app.serve is uvicorn with header and shutdown deadlines and a connection cap; it reads HOST,
# PORT and WORKERS from the environment.
CMD ["python3", "-m", "app.serve"]

FROM base AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
# Dependencies before sources, so a code change rebuilds only the last layers. First what serving
# needs (all the CPU image has), then, for the GPU image, torch and the rest of its extra.
COPY constraints.txt pyproject.toml /src/
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -c /src/constraints.txt -r /tmp/requirements.txt

FROM venv AS build
RUN pip install -c /src/constraints.txt torch torchvision
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['optional-dependencies']['torch']))" > /tmp/requirements.txt \
    && pip install -c /src/constraints.txt -r /tmp/requirements.txt
COPY README.md /src/
COPY model /src/model
COPY app /src/app
RUN pip install --no-deps /src
# The graphs beside the installed checkpoint: float32, and INT8 from the calibration ranges in
# its metadata (no data needed here).
RUN cd / && python3 -m model.export

FROM venv AS build-cpu
COPY --from=build /src /src
RUN pip install --no-deps /src
COPY --from=build /opt/venv/lib/python3.11/site-packages/model/weights/*.onnx \
    /opt/venv/lib/python3.11/site-packages/model/weights/

FROM base AS cpu
COPY --from=build-cpu /opt/venv /opt/venv
USER app

FROM build AS gpu
USER app
