#!/usr/bin/env bash
# Installs the system (apt) packages Talking Head Studio needs, and only the missing ones.
#
# Called by `make setup`. Idempotent: every package is checked with dpkg-query first;
# `apt-get update` and `apt-get install` run only when something is missing, through sudo
# only when not already root. On a system without dpkg/apt-get it prints the list and
# leaves the installation to you. Set STUDIO_SKIP_SYSTEM_PACKAGES=1 to skip this step.
#
# Why each package is here:
#   libportaudio2                       sounddevice (playback and microphone)
#   xvfb xauth                          a virtual display for GL tests and headless runs
#   libxcb-* libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
#                                       Qt's xcb platform plugin (PySide6)
#   libgl1 libegl1 libgl1-mesa-dri libegl-mesa0
#                                       OpenGL/EGL for vispy, Qt and MediaPipe (Mesa software GL)
#   espeak-ng flite                     text-to-speech voices for demo audio and phoneme tests
#   festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
#                                       festival and the English voices apt has (kal and ked
#                                       diphones, the HTS voice slt), built from recorded human
#                                       speech: natural voices for the neural model's training
#                                       corpus (studio train corpus); the lexicons festlex-cmu
#                                       and festlex-poslex come with them
set -euo pipefail

REQUIRED_PACKAGES=(
  libportaudio2
  xvfb xauth
  libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxkbcommon-x11-0 libxcb-cursor0
  libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0
  libfontconfig1 libdbus-1-3 libglib2.0-0
  libgl1 libegl1 libgl1-mesa-dri libegl-mesa0
  espeak-ng flite
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
)

log() { printf 'setup-system: %s\n' "$*" >&2; }

if [[ "${STUDIO_SKIP_SYSTEM_PACKAGES:-0}" == "1" ]]; then
  log "STUDIO_SKIP_SYSTEM_PACKAGES=1: not checking system packages"
  exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  log "no dpkg-query/apt-get here (not Debian or Ubuntu): install the equivalents of these yourself:"
  log "  ${REQUIRED_PACKAGES[*]}"
  exit 0
fi

package_is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

missing_packages=()
for package in "${REQUIRED_PACKAGES[@]}"; do
  if ! package_is_installed "$package"; then
    missing_packages+=("$package")
  fi
done

if [[ ${#missing_packages[@]} -eq 0 ]]; then
  log "all ${#REQUIRED_PACKAGES[@]} system packages are installed"
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  log "missing packages: ${missing_packages[*]}"
  log "not root and no sudo: install them as root, then run 'make setup' again"
  exit 1
fi

log "installing missing packages: ${missing_packages[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing_packages[@]}"

still_missing=()
for package in "${missing_packages[@]}"; do
  if ! package_is_installed "$package"; then
    still_missing+=("$package")
  fi
done
if [[ ${#still_missing[@]} -ne 0 ]]; then
  log "apt-get finished but these are still not installed: ${still_missing[*]}"
  exit 1
fi
log "installed ${#missing_packages[@]} package(s)"
