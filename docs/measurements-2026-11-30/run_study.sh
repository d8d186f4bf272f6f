#!/usr/bin/env bash
# The 2026-11-30 measurements on real MNIST and procedural dSprites, in priority order (re-running resumes: done
# runs are skipped). Kept as a record; the MNIST study of docs/results.md is `make study`.
cd "$(dirname "$0")/../.."
S=outputs/multirun/study
mkdir -p outputs/study  # its logs and walltimes.txt (a fresh clone has no outputs/study)
T() { local name=$1; shift; local t0=$(date +%s); .venv/bin/python train.py -m "$@" hydra.sweep.dir=$S/$name > outputs/study/$name.log 2>&1; echo "$name rc=$? wall_s=$(( $(date +%s) - t0 )) end=$(date +%T)" >> outputs/study/walltimes.txt; }
T beta10 beta=10 seed=0 pruning.finetune_loss=ce,ce_kl
T beta1_s01 beta=1 seed=0,1 pruning.amount=0.5,0.8,0.9,0.95,0.98,0.99
T units beta=1,10 seed=0 pruning.latent_units=inactive
T structured beta=1 seed=0 pruning=structured pruning.amount=0.5
T cnn model=cnn seed=0,1,2 pruning.amount=0.5,0.8,0.9,0.95,0.98,0.99
T dsprites dataset=dsprites beta=1,4,8 seed=0,1 epochs=3 finetune_epochs=1 pruning.amount=0.9 dataset.train_size=20000
T dsprites_cnn model=cnn dataset=dsprites seed=0,1 epochs=3 finetune_epochs=1 pruning.amount=0.9 dataset.train_size=20000
T beta1_s2 beta=1 seed=2 pruning.amount=0.5,0.8,0.9,0.95,0.98,0.99
echo all-done >> outputs/study/walltimes.txt
