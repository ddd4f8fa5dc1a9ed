#!/bin/bash
# Launches the shipped models' first training runs side by side on one GPU (from the device tool):
# audio-24k's second version (then fine-tuned: scripts/finetune_audio.sh) and the image quantizer
# comparison with the first image version's widths. The shipped image model (second version) is
# `configs/image.json --set run.steps=5000` as it stands.
# Data is copied out of the working tree first: the tool re-copies the tree on every call, and a
# run reading from it lost its files mid-run (measured: the audio run crashed at step 3640).
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /tmp/runs && rm -rf /tmp/data && cp -r .data /tmp/data
A='data.train=["/tmp/data/speech/train","/tmp/data/music/train","/tmp/data/environment/train"]'
setsid nohup python3 -m vqcodec.train configs/audio-24k.json --set "$A" --set 'data.dev=[]' \
  --set run.output_dir=/tmp/runs/audio --set run.steps=7000 --set run.save_every=1000 --set run.eval_every=3000 \
  > /tmp/runs/audio.out 2>&1 &
for q in vq simvq fsq; do
  setsid nohup python3 -m vqcodec.train configs/image.json --set 'data.train=["/tmp/data/images/train"]' \
    --set 'data.dev=["/tmp/data/images/dev"]' --set model.quantizer=$q --set run.output_dir=/tmp/runs/image-$q \
    --set 'model.channels=[32,64,128,128]' \
    --set run.steps=5000 --set run.save_every=1000 --set run.eval_every=1000 --set data.num_workers=3 \
    > /tmp/runs/image-$q.out 2>&1 &
done
