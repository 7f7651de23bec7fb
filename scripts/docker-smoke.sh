#!/usr/bin/env bash
# Build the project's unchanged Dockerfile, run it, curl a real photo, check the compose file.
# For a root shell on a Debian machine with Debian and PyPI mirrors but no container registry:
# python:3.11-slim is replaced by a stand-in built from debootstrap. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PHOTO=${PHOTO:-$ROOT/../shared/real-photos/9_ankle_boot/cook_13352_brown_boot.jpg}
IMAGE=fashion-resnet:smoke
PORT=${SMOKE_PORT:-18080}
WORK=$(mktemp -d /tmp/docker-smoke.XXXXXX)
DOCKERD_PID=
START=$SECONDS
step() { echo "== [$((SECONDS - START)) s] $*"; }

cleanup() {
    if [ -n "$DOCKERD_PID" ]; then
        docker rm -f fashion-smoke fashion-smoke-cpu fashion-smoke-repo >/dev/null 2>&1 || true
        docker-compose -f docker-compose.yml -p fashionsmoke --profile cpu --profile train \
            --profile replicas down -v >/dev/null 2>&1 || true
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    # dockerd leaves its network namespace mounted under the exec root.
    umount "$WORK/exec/netns/"* 2>/dev/null || true
    rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT

step "install docker.io, docker-compose, debootstrap"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends docker.io docker-compose debootstrap iptables >/dev/null

step "start dockerd (data under $WORK; $(df -h --output=avail "$WORK" | tail -1 | tr -d ' ') free there)"
export DOCKER_HOST="unix://$WORK/docker.sock"
dockerd --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
    --host "$DOCKER_HOST" >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
docker info >/dev/null || { tail -20 "$WORK/dockerd.log"; exit 1; }

step "debootstrap bookworm minbase and import it"
debootstrap --variant=minbase --include=ca-certificates bookworm "$WORK/rootfs" \
    http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
cp /usr/local/share/ca-certificates/*.crt "$WORK/rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$WORK/rootfs" update-ca-certificates >/dev/null
bundle=/etc/ssl/certs/ca-certificates.crt
tar -C "$WORK/rootfs" -c . | docker import \
    -c "ENV SSL_CERT_FILE=$bundle" -c "ENV PIP_CERT=$bundle" -c "ENV REQUESTS_CA_BUNDLE=$bundle" \
    - debian-minbase:bookworm >/dev/null

step "stand-in for python:3.11-slim"
docker build -q --network host -t python:3.11-slim - >/dev/null <<'DOCKERFILE'
FROM debian-minbase:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/*
DOCKERFILE

step "docker build the project's Dockerfile (default target: the GPU image, with torch)"
docker build --network host -t "$IMAGE" . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
docker image ls "$IMAGE" --format 'image size: {{.Size}}'
echo "docker's data after the GPU build: $(du -sh "$WORK/data" | cut -f1)"

step "docker build --target cpu (ONNX Runtime, no torch): at most 1 GB"
docker build --network host --target cpu -t "$IMAGE-cpu" . >"$WORK/build-cpu.log" 2>&1 \
    || { tail -40 "$WORK/build-cpu.log"; exit 1; }
size=$(docker image inspect -f '{{.Size}}' "$IMAGE-cpu")
echo "cpu image size: $((size / 1000000)) MB"
[ "$size" -le 1000000000 ] || { echo "the CPU image is over 1 GB"; exit 1; }

step "run the CPU image: ready within 2 s, a photo, no torch, RSS after 200 photos at most 300 MB (INT8) or 400 MB (fp32)"
started=$(date +%s.%N)
docker run -d --read-only --tmpfs /tmp --name fashion-smoke-cpu -p "127.0.0.1:$((PORT + 1)):8000" "$IMAGE-cpu" >/dev/null
until curl -sf "http://127.0.0.1:$((PORT + 1))/health/ready" >/dev/null; do
    python3 -c "import sys, time; sys.exit(time.time() - $started > 60)" || { docker logs fashion-smoke-cpu; exit 1; }
    sleep 0.05
done
ready=$(python3 -c "import time; print(round(time.time() - $started, 2))")
echo "ready $ready s after docker run"
python3 -c "import sys; sys.exit(float(sys.argv[1]) > 2)" "$ready" || { echo "ready after more than 2 s"; exit 1; }
answer=$(curl -sf -F "image=@$PHOTO" "http://127.0.0.1:$((PORT + 1))/predict")
echo "$answer"
python3 -c 'import json, sys; a = json.loads(sys.argv[1]); assert a["label"] and a["device"] == "cpu", a' "$answer"
# The page at / and its files, from the package inside the read-only container.
curl -sf "http://127.0.0.1:$((PORT + 1))/" | grep -q "<title>fashion-resnet" || { echo "no page at /"; exit 1; }
curl -sf -o /dev/null "http://127.0.0.1:$((PORT + 1))/page/page.js" || { echo "no page.js"; exit 1; }
curl -sf -o /dev/null -F "image=@$PHOTO" "http://127.0.0.1:$((PORT + 1))/predict?explain=true" \
    || { echo "explain=true failed"; exit 1; }
docker logs fashion-smoke-cpu 2>&1 | grep -E "serving|precision" || true
if docker exec fashion-smoke-cpu python3 -c "import torch" 2>/dev/null; then
    echo "torch is importable in the CPU image"; exit 1
fi
# 200 photos, 8 at a time: the busy service hands them to its decoding process.
seq 200 | xargs -P 8 -I{} curl -sf -o /dev/null -F "image=@$PHOTO" "http://127.0.0.1:$((PORT + 1))/predict"
# Every process of the container: the service and its photo-decoding process.
rss=$(docker exec fashion-smoke-cpu sh -c "cat /proc/[0-9]*/status" | awk '/^VmRSS/ {kb += $2} END {print kb}')
echo "RSS after 200 photos, all processes: $((rss / 1024)) MB"
# The service serves INT8 where the CPU has AVX2 or VNNI, else float32, whose graph holds four
# times the weights (44.7 against 11.3 MB, and ONNX Runtime keeps a prepacked copy).
limit=300
# (The log is read whole first: grep -q would end the pipe early, and pipefail then says no.)
served=$(docker logs fashion-smoke-cpu 2>&1)
[[ "$served" == *"(fp32, "* ]] && limit=400
[ "$rss" -le $((limit * 1024)) ] || { echo "RSS over $limit MB"; exit 1; }
docker rm -f fashion-smoke-cpu >/dev/null

step "the CPU image on a mounted model repository: a second model loaded into the running read-only container"
# A version as a user installs one: weights, metadata naming them, the INT8 graph; readable by
# the container's user. Written under a temporary name, then moved into place.
install_version() {  # name version
    local staging="$WORK/repo/.staging" target="$WORK/repo/$1/$2"
    mkdir -p "$staging" "$WORK/repo/$1"
    cp model/weights/fashion-resnet18.safetensors "$staging/model.safetensors"
    cp model/weights/fashion-resnet18.int8.onnx "$staging/model.int8.onnx"
    sed 's/fashion-resnet18.safetensors/model.safetensors/' model/weights/fashion-resnet18.json \
        > "$staging/model.json"
    chmod -R a+rX "$staging"
    mv "$staging" "$target"
}
install_version fashion 1
docker run -d --read-only --tmpfs /tmp --name fashion-smoke-repo -p "127.0.0.1:$((PORT + 2)):8000" \
    -v "$WORK/repo:/models:ro" -e MODEL_REPOSITORY=/models -e DEFAULT_MODEL=fashion \
    -e MODEL_CONTROL=explicit "$IMAGE-cpu" >/dev/null
REPO_URL="http://127.0.0.1:$((PORT + 2))"
for _ in $(seq 120); do curl -sf "$REPO_URL/health/ready" >/dev/null && break; sleep 0.5; done
curl -sf "$REPO_URL/health/ready" >/dev/null || { docker logs fashion-smoke-repo; exit 1; }
install_version second 1
curl -sf -X POST "$REPO_URL/v2/repository/models/second/load" \
    || { docker logs fashion-smoke-repo; echo "loading the second model failed"; exit 1; }
models=$(curl -sf "$REPO_URL/models")
echo "$models"
python3 -c 'import json, sys; m = json.loads(sys.argv[1])["models"]; assert {(r["name"], r["state"]) for r in m} == {("fashion", "READY"), ("second", "READY")}, m' "$models"
for model in fashion second; do
    answer=$(curl -sf -F "image=@$PHOTO" "$REPO_URL/predict?model=$model")
    python3 -c 'import json, sys; a = json.loads(sys.argv[1]); assert a["label"] and a["model"]["name"] == sys.argv[2] and a["model"]["version"] == "1", a' "$answer" "$model"
done
echo "both models answer from the read-only container"
docker rm -f fashion-smoke-repo >/dev/null

step "docker run -p $PORT:8000 and wait for /health/ready"
docker run -d --read-only --tmpfs /tmp --name fashion-smoke -p "127.0.0.1:$PORT:8000" "$IMAGE" >/dev/null
for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break
    sleep 1
done
curl -sf "http://127.0.0.1:$PORT/health/ready" || { docker logs fashion-smoke; exit 1; }
echo

step "curl a real photo"
answer=$(curl -sf -F "image=@$PHOTO" "http://127.0.0.1:$PORT/predict")
echo "$answer"
python3 -c 'import json, sys; a = json.loads(sys.argv[1]); assert a["label"] and 0 <= a["class_id"] < 10 and a["device"] == "cpu", a' "$answer"

step "the container runs as a non-root user"
uid=$(docker exec fashion-smoke id -u)
[ "$uid" != 0 ] || { echo "container runs as root"; exit 1; }
echo "uid $uid"
for _ in $(seq 30); do
    health=$(docker inspect -f '{{.State.Health.Status}}' fashion-smoke)
    [ "$health" = healthy ] && break
    sleep 2
done
echo "HEALTHCHECK: $health"
[ "$health" = healthy ]
docker stop fashion-smoke >/dev/null

step "docker-compose config (default and each profile)"
docker-compose -f docker-compose.yml config -q
for profile in cpu train train-gpu replicas; do
    docker-compose -f docker-compose.yml --profile "$profile" config -q
done

# README's commands as a user runs them, on this GPU-less machine: train, then serve on the CPU.
docker tag "$IMAGE" fashion-resnet:latest
docker tag "$IMAGE-cpu" fashion-resnet:cpu
compose() { PORT=$PORT docker-compose -f docker-compose.yml -p fashionsmoke "$@"; }
step "compose: train profile (1 tiny epoch into the runs volume)"
compose --profile train run --rm train python3 -m model.train --out /home/app/runs/d2l \
    --epochs 1 --resize 28 --train-subset 512 --test-subset 256 --no-progress
# Start api-cpu (building as a user would: every layer is cached by now) on a checkpoint, check
# that /model names it and that /predict answers, stop it.
serve_and_check() {
    compose --profile cpu up -d --build api-cpu
    for _ in $(seq 120); do
        curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break
        sleep 1
    done
    curl -sf "http://127.0.0.1:$PORT/model" | python3 -c '
import json, sys
m = json.load(sys.stdin)
# Only the file name is shown (paths stay private); the metadata tells the two checkpoints apart.
assert m["checkpoint_file"] == sys.argv[1].rsplit("/", 1)[-1] and m["device"] == "cpu", m
assert (m["metadata"]["recipe"]["epochs"] == 1) == ("/runs/" in sys.argv[1]), m["metadata"]["recipe"]
print("serving", m["checkpoint_file"], "on", m["device"])' "$MODEL_CHECKPOINT"
    curl -sf -F "image=@$PHOTO" "http://127.0.0.1:$PORT/predict" >/dev/null
    compose --profile cpu stop api-cpu
}
step "compose: cpu profile serving the trained checkpoint"
MODEL_CHECKPOINT=/home/app/runs/d2l/best.safetensors serve_and_check
step "compose: cpu profile serving a checkpoint from a mounted folder (graphs exported first)"
# A checkpoint of one's own, as a user brings it: the weights and metadata, then the ONNX graphs
# the CPU image serves, exported with the torch image.
mkdir -p "$WORK/ckpt"
cp "$ROOT"/model/weights/fashion-resnet18.{safetensors,json} "$WORK/ckpt/"
docker run --rm --user 0 -v "$WORK/ckpt:/checkpoints" fashion-resnet:latest \
    python3 -m model.export --checkpoint /checkpoints/fashion-resnet18.safetensors
CHECKPOINT_DIR=$WORK/ckpt MODEL_CHECKPOINT=/checkpoints/fashion-resnet18.safetensors \
    serve_and_check
compose --profile cpu --profile train down -v

step "compose: two replicas behind HAProxy, each restarted twice under 16 clients for 60 s"
compose --profile replicas up -d --build proxy
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 1; done
python3 benchmarks/rolling_restart.py --compose fashionsmoke --url "http://127.0.0.1:$PORT" \
    --seconds 60 --photo "$PHOTO" || { compose --profile replicas logs --tail 30; exit 1; }
compose --profile replicas down -v

step "a newcomer's first hour (scripts/newcomer.sh), its container step on the CPU image"
NEWCOMER_CPU_IMAGE=fashion-resnet:cpu bash scripts/newcomer.sh

step "docker smoke test passed"
