#!/usr/bin/env bash
# Here, before a GPU lease: put what a training run needs, beside the shipped weights, into one carry folder.
#   bash scripts/gpu/lease_prep.sh        (needs corpus/: python -m ocr_model.data build --out corpus/ and
#                                        python -m ocr_model.corpus_scripts --out corpus/)
# .carry1 = the whole corpus + a snapshot of the committed code (git archive HEAD, without the weights, so
# edits made here during the lease cannot reach the run). The weights alone are ~63.5 MiB of the 64 MiB a
# call may send, so they travel xz'd beside it (scripts/gpu/pack_weights.sh -> .cw) in the ONE call that
# trains (scripts/gpu/one_call.sh), with the weights moved out of the tree (docs/model_card.md).
set -eu
cd "$(git rev-parse --show-toplevel)"
mkdir -p .git/info && touch .git/info/exclude  # a fresh checkout may have no info/ (then .carry1 would travel)
grep -qxF "/.carry1/" .git/info/exclude || echo "/.carry1/" >> .git/info/exclude
ls corpus/*.txt.xz >/dev/null
rm -rf .carry1 && mkdir -p .carry1/corpus .carry1/code
cp corpus/*.txt.xz .carry1/corpus/
git archive HEAD ocr_model optimem scripts | tar -x -C .carry1/code && rm -rf .carry1/code/ocr_model/weights
rm -rf .carry1/code/ocr_model/page/fonts  # 4.5 MB the tree sends anyway (one_call.sh copies them): .cw fits
mkdir -p .carry1/code/ocr_model/weights/optimem-small && cp ocr_model/weights/optimem-small/tokenizer.json .carry1/code/ocr_model/weights/optimem-small/
weights=$(du -sb ocr_model/weights | cut -f1)
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
c=$(du -sb .carry1 | cut -f1)
echo ".carry1: $(( c / 1024 )) KiB; with the tree minus the weights $(( (tracked - weights + c) / 1048576 )) MiB of 64;" \
     "the tree with the weights $(( tracked / 1048576 )) MiB"
[ $(( tracked - weights + c )) -le $(( 64 * 1048576 )) ] || { echo "too large for one call"; exit 1; }
