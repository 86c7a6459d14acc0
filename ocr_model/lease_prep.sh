#!/usr/bin/env bash
# Here, before a GPU lease: split what a training run needs into two carry folders, each small enough to
# travel beside the tracked files (the shipped weights alone are ~59 MiB of the 64 MiB a call may carry).
#   bash ocr_model/lease_prep.sh            (needs corpus/ built: python -m ocr_model.data build --out corpus/)
# .carry1: the largest corpus file; .carry2: the rest of the corpus + a snapshot of the committed code
# (git archive HEAD, without the weights, so edits made here during the lease cannot reach the run).
# On the machine, copy both corpora into /tmp/c (see docs/model_card.md "Continue training").
set -eu
cd "$(git rev-parse --show-toplevel)"
for d in /.carry1/ /.carry2/; do grep -qxF "$d" .git/info/exclude || echo "$d" >> .git/info/exclude; done
ls corpus/*.txt.xz >/dev/null
rm -rf .carry1 .carry2 && mkdir -p .carry1 .carry2/corpus
big=$(ls -S corpus/*.txt.xz | head -1)
cp "$big" .carry1/
for f in corpus/*.txt.xz; do [ "$f" = "$big" ] || cp "$f" .carry2/corpus/; done
git archive HEAD ocr_model optimem | tar -x -C .carry2 && rm -rf .carry2/ocr_model/weights
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb | tail -1 | cut -f1)
for d in .carry1 .carry2; do
  c=$(du -sb $d | cut -f1)
  total=$(( tracked + ${untracked:-0} + c ))
  echo "$d: $(( c / 1024 )) KiB; with the working tree $(( total / 1048576 )) MiB of 64"
  [ "$total" -le $(( 64 * 1048576 )) ] || { echo "too large for one call: $d"; exit 1; }
done
