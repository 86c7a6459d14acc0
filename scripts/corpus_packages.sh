#!/usr/bin/env bash
# Here, on a fresh machine, before `python -m ocr_model.data build` and `python -m ocr_model.corpus_scripts`:
# the Debian packages and PyPI packages whose text the training corpus is made of (docs/model_card.md,
# "Training data"). Session 7 rebuilt the corpus with exactly these, and run s6's evaluation on it gave
# its earlier numbers to the last digit.
set -eu
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wamerican python3.11-doc jargon-text bible-kjv-text \
  debian-reference-en dict-devil fortunes fortune-mod groff \
  fortunes-de fortunes-es fortunes-it fortunes-br fortunes-pl fortunes-cs fortunes-ga fortunes-ru fortunes-bg \
  fortunes-zh manpages-de manpages-fr manpages-es manpages-it manpages-pt manpages-pt-br manpages-pl manpages-cs \
  manpages-hu manpages-ro manpages-tr manpages-nl manpages-sv manpages-da manpages-fi manpages-nb manpages-vi \
  manpages-uk manpages-sr manpages-mk manpages-el manpages-ru manpages-ja manpages-zh \
  debian-reference-de debian-reference-fr debian-reference-es debian-reference-it debian-reference-pt \
  debian-reference-zh-cn debian-reference-zh-tw debian-reference-ja
python -m pip install -q faker wordfreq chatterbot-corpus pyyaml
