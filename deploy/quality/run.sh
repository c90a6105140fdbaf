#!/bin/sh
# Measures, for every photo of a corpus fitted to 1024 px, the bytes and SSIM
# of JPEG q80 and of WebP and AVIF (libaom, effort 2, as pms encodes them) at
# several qualities, against the lossless resize. Prints one line per file:
# name bytes ssim ssim-in-dB. Usage: deploy/quality/run.sh [CORPUS] > results.txt
set -e
corpus=${1:-../shared/images}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/quality" ./deploy/quality
for f in "$corpus"/*.jpg "$corpus"/*.png "$corpus"/*.webp; do
  b=$(basename "$f"); b=$out/${b%.*}
  vipsthumbnail "$f" -s 1024x10000 -o "$b.ref.png" 2>/dev/null
  vips jpegsave "$b.ref.png" "$b.j80.jpg" -Q 80 --optimize-coding --strip 2>/dev/null
  for q in 75 80 85 90 95; do vips webpsave "$b.ref.png" "$b.w$q.webp" -Q $q --strip 2>/dev/null; done
  for q in 50 60 70 75 80; do
    vips heifsave "$b.ref.png" "$b.a$q.avif" -Q $q --compression av1 --effort 2 --strip 2>/dev/null
    vips copy "$b.a$q.avif" "$b.a$q.avif.png" 2>/dev/null
  done
  "$out/quality" "$b.ref.png" "$b.j80.jpg" "$b".w*.webp "$b".a*.avif | sed "s|$out/||"
done
