#!/usr/bin/env bash
# Installs what the weekly report's PDF tests use, from Debian's packages: poppler-utils
# (pdftotext for the text, pdffonts for font embedding, pdftoppm to render a page). Without
# them tests/test_report_render.py skips its PDF checks. Safe to run again; does nothing when
# they are present. Needs root (CI runs as root) or sudo.
set -euo pipefail
need=()
for tool in pdftotext pdffonts pdftoppm; do
  command -v "$tool" >/dev/null 2>&1 || { need+=(poppler-utils); break; }
done
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -qq >/dev/null 2>&1
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
}
echo "installed: ${need[*]}"
