#!/usr/bin/env bash
# Re-create docs/confirmation-de.png: the HTML part of the German confirmation, as headless
# Chromium (Debian package `chromium`) renders it. Run from the repository root:
#   bash docs/screenshot.sh [path/to/mailbot]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mailbot=${1:-.venv/bin/mailbot}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$mailbot" preview confirmed --lang de --html "$work/confirmation-de.html" >/dev/null
/usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --hide-scrollbars --window-size=720,1900 \
    --screenshot="docs/confirmation-de.png" "file://$work/confirmation-de.html" 2>/dev/null
echo "docs/confirmation-de.png written"
