#!/bin/sh
# System packages the live tests (tests/live) need, on Debian/Ubuntu:
#   - GStreamer's RTSP server, run by the test fixture with the system python3 (python3-gi)
#   - headless Chromium, which opens the --serve page and takes screenshots
# Idempotent and quiet: installs only what is missing; prints one line. Needs root (or sudo).
set -eu

PACKAGES="python3 python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly chromium
fonts-liberation"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "install-live: all live-test packages present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-live: need root to install:$missing (tests needing them will skip)" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086  # word splitting of the package list is intended
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-live: installed$missing"
