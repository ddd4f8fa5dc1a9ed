#!/bin/bash
# A/B of adversarial training at equal steps, launched side by side on one GPU (device tool):
#   bash scripts/adversarial_ab.sh image   # needs .data/images/{train,dev}
#   bash scripts/adversarial_ab.sh audio   # needs .data/{speech,music,environment}/train and
#                                          # /tmp/data/speech/dev (copied by an earlier call)
# Each arm logs dev metrics every 1,000 steps to /tmp/ab/ARM/log.jsonl. Data is copied out of the
# working tree first (the device tool re-copies the tree on every call).
set -e
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /tmp/ab /tmp/data && cp -r .data/. /tmp/data/
run() {  # NAME CONFIG OVERRIDES...
  local name=$1 config=$2; shift 2
  setsid nohup python3 -m vqcodec.train "$config" --set run.output_dir=/tmp/ab/$name \
    --set run.steps=5000 --set run.eval_every=1000 --set run.save_every=1000 "$@" \
    > /tmp/ab/$name.out 2>&1 &
}
if [ "$1" = image ]; then
  I=(--set 'data.train=["/tmp/data/images/train"]' --set 'data.dev=["/tmp/data/images/dev"]'
     --set model.quantizer=fsq --set 'model.channels=[32,64,128,128]' --set data.num_workers=3)
  run image-plain configs/image.json "${I[@]}"
  run image-adversarial configs/image.json "${I[@]}" --set adversarial.weight=0.1 \
    --set adversarial.start_step=1000 --set adversarial.width=64
else
  A=(--set 'data.train=["/tmp/data/speech/train","/tmp/data/music/train","/tmp/data/environment/train"]'
     --set 'data.dev=["/tmp/data/speech/dev"]' --set data.num_workers=5)
  A+=(--set run.steps=3000)
  run audio-plain configs/audio-24k.json "${A[@]}"
  run audio-adversarial configs/audio-24k.json "${A[@]}" --set adversarial.weight=0.1 \
    --set adversarial.feature_matching=0.2 --set adversarial.width=16
fi
