#!/usr/bin/env bash
# Build the shards the experiments use.
#   data/prepare.sh                       the embedded digits (8x8 and 16x16), no download
#   data/prepare.sh mnist DIR             MNIST IDX files from DIR (or DIR/MNIST/raw)
#   data/prepare.sh cifar10-jpg DIR       CIFAR-10 as an ImageFolder: DIR/train/<class>/*.jpg, DIR/test/...
#   data/prepare.sh cifar10 FILE_OR_DIR   the CIFAR-10 python pickles (cifar-10-python.tar.gz)
# Shards go to $OUT (default data/shards). Extra options after the arguments go to every build.
set -euo pipefail
OUT="${OUT:-$(dirname "$0")/shards}"
what="${1:-digits}"
shift || true
case "$what" in
  digits)
    lit-diffusion data build digits --out "$OUT/digits" --overwrite "$@"
    lit-diffusion data build digits --out "$OUT/digits16" --resolution 16 --overwrite "$@" ;;
  mnist)
    src="$1"; shift
    for split in train test; do
      lit-diffusion data build mnist "$src" --split "$split" --out "$OUT/mnist/$split" --overwrite "$@"
    done ;;
  cifar10-jpg)
    src="$1"; shift
    for split in train test; do
      lit-diffusion data build imagefolder "$src/$split" --out "$OUT/cifar10/$split" --overwrite "$@"
    done ;;
  cifar10)
    src="$1"; shift
    for split in train test; do
      lit-diffusion data build cifar10 "$src" --split "$split" --out "$OUT/cifar10/$split" --overwrite "$@"
    done ;;
  *)
    echo "usage: $0 [digits | mnist DIR | cifar10-jpg DIR | cifar10 FILE_OR_DIR] [build options]" >&2
    exit 2 ;;
esac
