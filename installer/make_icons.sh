#!/usr/bin/env bash
# Renders resources/icons/lmworkbench.svg into the hicolor PNG sizes kept in installer/icons/
# (run again after changing the SVG; needs ImageMagick with librsvg or its own SVG renderer).
set -euo pipefail
cd "$(dirname "$0")/.."
for s in 16 22 24 32 48 64 128 256 512; do
  convert -background none -density $((s * 4)) resources/icons/lmworkbench.svg -resize ${s}x${s} \
          -strip PNG32:installer/icons/lmworkbench-$s.png
done
