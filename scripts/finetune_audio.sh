#!/bin/bash
# The shipped audio-24k's third version: the second version's weights (run.init_from=audio-24k
# while that version was installed) fine-tuned for 4,000 more steps of configs/audio-24k.json.
# Launched from the device tool; needs .data/{speech,music,environment}/train, .data/speech/dev.
#   bash scripts/finetune_audio.sh audio-ft-plain       # -> /tmp/runs/audio-ft-plain (shipped)
#   bash scripts/finetune_audio.sh audio-ft --set adversarial.weight=0.1 \
#        --set adversarial.feature_matching=0.2 --set adversarial.width=16   # the A/B arm
export PYTHONPATH=/tmp/site:$PWD
name=${1:-audio-ft}; shift
mkdir -p /tmp/runs && rm -rf /tmp/data && cp -r .data /tmp/data
A='data.train=["/tmp/data/speech/train","/tmp/data/music/train","/tmp/data/environment/train"]'
setsid nohup python3 -m vqcodec.train configs/audio-24k.json --set "$A" \
  --set 'data.dev=["/tmp/data/speech/dev"]' --set run.init_from=audio-24k \
  --set run.output_dir=/tmp/runs/$name --set run.steps=4000 --set run.eval_every=1000 \
  --set run.save_every=1000 "$@" > /tmp/runs/$name.out 2>&1 &
