#!/usr/bin/env bash
# Make the example's disk image: an ext4 filesystem holding site/ (xenode mkimage runs
# mkfs.ext4 -d). Usage: examples/block/make-image.sh [IMAGE] [SIZE]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
img="${1:-/var/lib/xenode/web.img}"
size="${2:-64M}"
mkdir -p "$(dirname "$img")"
exec xenode mkimage --force "$here/site" "$img" "$size"
