#!/usr/bin/env bash
# A newcomer's first hour, as README.md tells it, in a fresh clone; fails on any snag.
#
#   bash scripts/newcomer.sh            # clones this checkout's HEAD into a temporary folder
#
# 1. `make serve` on the torch-free path: ready, timed from the clone; its environment's size.
# 2. README's example photo through curl: the answer is right.
# 3. The "train your own" recipe, then evaluate it, then serve it: its metadata shows in /model.
# 4. With NEWCOMER_CPU_IMAGE set (scripts/docker-smoke.sh sets it to the CPU image it built),
#    that checkpoint mounted into the CPU container as README says: 200 on the photo.
# 5. Ordinary mistakes on every CLI: exactly one line on stderr and a non-zero exit.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/newcomer.XXXXXX)
PORT=${NEWCOMER_PORT:-18123}
SERVER_PID=
START=$SECONDS
step() { echo "== [$((SECONDS - START)) s] $*"; }
fail() { echo "newcomer: FAILED: $*" >&2; exit 1; }
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
cleanup() {
    stop_server
    docker rm -f newcomer-cpu >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_ready() {  # wait_ready URL SECONDS
    for _ in $(seq "$2"); do
        curl -sf "$1/health/ready" >/dev/null && return 0
        sleep 1
    done
    return 1
}

step "clone $SRC into $WORK/repo"
CLONED=$SECONDS
git clone -q "$SRC" "$WORK/repo"
cd "$WORK/repo"

step "1. make serve (torch-free) until ready"
make serve PORT="$PORT" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
wait_ready "http://127.0.0.1:$PORT" 300 || { tail -30 "$WORK/serve.log"; fail "make serve not ready"; }
READY_S=$((SECONDS - CLONED))
VENV_MB=$(du -sm .venv | cut -f1)
echo "ready ${READY_S} s after the clone; .venv ${VENV_MB} MB"
if .venv/bin/python -c "import torch" 2>/dev/null; then fail "make serve installed torch"; fi

step "2. README's example request"
EXAMPLE=$(grep -o 'curl -s -F image=@examples/[^ ]*' README.md | head -1 | sed 's/.*@//')
[ -n "$EXAMPLE" ] && [ -f "$EXAMPLE" ] || fail "README's first curl names no example photo here"
ANSWER=$(curl -s -F "image=@$EXAMPLE" "http://127.0.0.1:$PORT/predict")
echo "$ANSWER" | head -c 300; echo
EXPECTED=$(grep -A1 "curl -s -F image=@$EXAMPLE" README.md | grep -o '"label":"[^"]*"' | head -1)
echo "$ANSWER" | grep -qF "$EXPECTED" || fail "expected $EXPECTED for $EXAMPLE"
stop_server

step "3. train your own (README's recipe), evaluate it, serve it"
RECIPE=$(sed -n '/^## Train and evaluate/,/^## /p' README.md | grep -m1 "make train-quick")
[ -n "$RECIPE" ] || fail "README has no quick training command"
eval "$RECIPE" >"$WORK/train.log" 2>&1 || { tail -20 "$WORK/train.log"; fail "quick training"; }
CKPT=runs/quick/best.safetensors
[ -f "$CKPT" ] || fail "no $CKPT after the quick recipe"
.venv/bin/python -m model.evaluate --checkpoint "$CKPT" --out "$WORK/eval" --photo-dir none \
    >"$WORK/eval.log" 2>&1 || { tail -20 "$WORK/eval.log"; fail "evaluate"; }
grep -i "test accuracy" "$WORK/eval.log" | head -1
MODEL_CHECKPOINT=$CKPT make serve PORT="$PORT" >"$WORK/serve2.log" 2>&1 &
SERVER_PID=$!
wait_ready "http://127.0.0.1:$PORT" 120 || { tail -30 "$WORK/serve2.log"; fail "serving the quick checkpoint"; }
curl -s "http://127.0.0.1:$PORT/model" | grep -q '"train_subset"' || fail "/model lacks the recipe"
stop_server

if [ -n "${NEWCOMER_CPU_IMAGE:-}" ]; then
    step "4. the quick checkpoint mounted into the CPU container ($NEWCOMER_CPU_IMAGE)"
    mkdir -p "$WORK/ckpts"
    cp runs/quick/best.* "$WORK/ckpts/"
    docker run -d --name newcomer-cpu -p "$PORT:8000" -v "$WORK/ckpts:/checkpoints:ro" \
        -e MODEL_CHECKPOINT=/checkpoints/best.safetensors "$NEWCOMER_CPU_IMAGE" >/dev/null
    wait_ready "http://127.0.0.1:$PORT" 120 || { docker logs newcomer-cpu | tail -30; fail "container"; }
    STATUS=$(curl -s -o /dev/null -w '%{http_code}' -F "image=@$EXAMPLE" "http://127.0.0.1:$PORT/predict")
    [ "$STATUS" = 200 ] || fail "the container answered $STATUS"
    docker rm -f newcomer-cpu >/dev/null
else
    step "4. skipped: NEWCOMER_CPU_IMAGE is not set (scripts/docker-smoke.sh runs it)"
fi

step "5. mistakes: one line on stderr, a non-zero exit"
one_line() {  # one_line DESCRIPTION COMMAND...
    local what=$1; shift
    local err status=0
    err=$("$@" 2>&1 >/dev/null) || status=$?
    [ "$status" -ne 0 ] || fail "$what: exit status 0"
    [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] || fail "$what: not one line: $err"
    echo "  $what -> $err"
}
PY=.venv/bin/python
mkdir -p "$WORK/empty"
one_line "evaluate, missing checkpoint" $PY -m model.evaluate --checkpoint runs/nope.safetensors
one_line "evaluate, a folder" $PY -m model.evaluate --checkpoint "$WORK/empty"
one_line "calibrate, missing checkpoint" $PY -m model.calibrate --checkpoint runs/nope.safetensors
one_line "summary, bad size" $PY -m model.summary --input-size 3
one_line "summary, missing checkpoint" $PY -m model.summary --checkpoint runs/nope.safetensors
one_line "train, bad value" $PY -m model.train --epochs zero
one_line "train, negative epochs" $PY -m model.train --epochs -1
one_line "train, missing data" $PY -m model.train --data-dir "$WORK/empty" --out "$WORK/t"
one_line "serve, missing checkpoint" env MODEL_CHECKPOINT=runs/nope.safetensors $PY -m app.serve --port "$PORT"
one_line "serve, a folder" env MODEL_CHECKPOINT="$WORK/empty" $PY -m app.serve --port "$PORT"
one_line "serve, bad setting" env MAX_UPLOAD_MB=-1 $PY -m app.serve --port "$PORT"
python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1 &
BUSY=$!
sleep 1
one_line "serve, port in use" $PY -m app.serve --port "$PORT"
kill $BUSY
echo "newcomer: all good (make serve ready in ${READY_S} s, .venv ${VENV_MB} MB)"
