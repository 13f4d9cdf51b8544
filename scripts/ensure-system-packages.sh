#!/usr/bin/env bash
# Installs the Debian packages the tests use, when any is missing: Chromium and Korean fonts for
# the browser tests and the generated test images, Tesseract with Korean data for OCR, and
# poppler's pdftotext as the reference the PDF text is compared with. The tests drive these
# system programs; no tool downloads a browser of its own.
set -euo pipefail

missing_packages() {
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  fc-list 2>/dev/null | grep -qi "noto.*cjk" || missing+=(fonts-noto-cjk)
  command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)
  if ! tesseract --list-langs 2>/dev/null | grep -qx kor; then missing+=(tesseract-ocr-kor); fi
  command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
}

missing_packages
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "The tests need these Debian packages (or your system's equivalents): ${missing[*]}; install them and rerun." >&2
  exit 1
fi
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
# Two test runs started together must not both call apt: the second waits for the first, then
# finds the packages there.
exec 9>"${TMPDIR:-/tmp}/rag-system-packages.lock"
flock 9
missing_packages
[ ${#missing[@]} -eq 0 ] && exit 0
# Anything else holding apt's locks (unattended upgrades) is waited for, not failed on.
$sudo_cmd apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
