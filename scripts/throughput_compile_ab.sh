#!/bin/bash
# Two-GPU scaling of the shipped audio config, eager and with run.compile, on the device tool's
# nvidia-h200-x2 (issue 7). Prepare with:
#   ../shared/tools/gpu-prep speech/train music/train environment/train
# and pass carry [".whl", ".data"]. Runs in the background (setsid) and writes
# /tmp/tp/{eager,compiled}.md; poll with `sleep 540; cat /tmp/tp/*.md` in follow-up calls.
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /tmp/tp /tmp/data && cp -r .data/. /tmp/data/
TRAIN='data.train=["/tmp/data/speech/train","/tmp/data/music/train","/tmp/data/environment/train"]'
setsid nohup bash -c "
  python3 benchmarks/training_throughput.py configs/audio-24k.json --gpus 1 2 --steps 500 \
      --warmup 150 --independent --out /tmp/tp/eager --set '$TRAIN' > /tmp/tp/eager.md 2>&1
  python3 benchmarks/training_throughput.py configs/audio-24k.json --gpus 1 2 --steps 500 \
      --warmup 150 --independent --out /tmp/tp/compiled --set '$TRAIN' --set run.compile=true \
      > /tmp/tp/compiled.md 2>&1
" > /dev/null 2>&1 &
echo "started: /tmp/tp/eager.md, then /tmp/tp/compiled.md"
