#!/usr/bin/env bash
# Debian packages the artifact needs beyond Python. Installs only what is missing; needs root (or sudo).
set -euo pipefail
packages=(
  poppler-utils                 # pdffonts, pdftoppm: font checks and PDF previews
  texlive-latex-base            # pdflatex: the generated LaTeX is compiled in the tests
  texlive-latex-recommended     # booktabs
  texlive-fonts-recommended
  lmodern
  texlive-publishers            # acmart.cls and IEEEtran.cls: the paper test sets the LaTeX in both classes
  texlive-latex-extra           # what acmart loads (xstring, totpages, environ, hyperxmp, manyfoot, comment, ...)
  texlive-plain-generic         # binhex.tex, which acmart's newtxmath reads
  texlive-fonts-extra           # acmart's fonts: libertine, zi4 (Inconsolata), newtxmath (~0.5 GB download)
  chromium                      # headless browser test of the book
  dvipng                        # the book renders math offline (sphinx.ext.imgmath)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
