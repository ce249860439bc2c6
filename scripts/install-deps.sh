#!/usr/bin/env bash
# Installs the Debian 12 packages LM Workbench builds and tests with (idempotent).
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
pkgs=(build-essential cmake pkg-config qt6-base-dev qt6-charts-dev libpoppler-qt6-dev libsentencepiece-dev
      nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libboost-dev libpcre2-dev libutf8proc-dev xvfb xauth curl nodejs npm
      xdotool openbox scrot  # tests/e2e/desktop_test.sh: drives the real window, takes its pictures
      desktop-file-utils appstream lintian help2man  # the .deb, its man pages and tests/install/package_test.sh
      clang libclang-rt-dev)  # clang + its sanitizer/libFuzzer runtimes: scripts/fuzz.sh
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# Node and npm may come from elsewhere on the machine; only ask apt when they are absent.
command -v node >/dev/null && missing=("${missing[@]/nodejs}") && missing=("${missing[@]/npm}")
missing=($(printf '%s\n' "${missing[@]}" | sed '/^$/d'))
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
