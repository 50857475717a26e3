#!/usr/bin/env bash
# Install what the browser platforms (wasm, webgpu, webnn) need; safe to run again (each step checks first).
#   1. Debian's chromium (apt), unless $BENCHKIT_CHROMIUM or /usr/bin/chromium is already there;
#   2. onnxruntime-web and transformers.js (@huggingface/transformers, its onnxruntime-web overridden to the same
#      pinned one), pinned by kit/browser/package-lock.json, into kit/browser/node_modules (git-ignored), with
#      --ignore-scripts so that no package install script runs or reaches the network, and --omit=optional; then
#      transformers.js's Node-only dependencies (onnxruntime-node's native libraries, sharp) are removed: the page
#      loads transformers.js's web build alone;
#   3. the Python ONNX packages (export + reference check) into the project's venv;
#   4. with --webnn only: @sparticuz/chromium (a Chromium 147 build whose WebNN works on the CPU; Debian's has no
#      WebNN backend), pinned by kit/browser/webnn/package-lock.json, unpacked to kit/browser/webnn/node_modules/.chromium.
# Usage: scripts/install_browser.sh [--webnn] [python]   (default python: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

WEBNN=0
if [ "${1:-}" = "--webnn" ]; then WEBNN=1; shift; fi
PYTHON="${1:-.venv/bin/python}"
CHROMIUM="${BENCHKIT_CHROMIUM:-/usr/bin/chromium}"
NPM_DIR=kit/browser
ORT_WEB_VERSION=1.30.0
TRANSFORMERS_JS_VERSION=4.3.2
PY_PACKAGES=(onnx==1.23.2 onnxruntime==1.32.0 onnxscript==0.7.2)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

if [ -x "$CHROMIUM" ]; then
    echo "chromium: $("$CHROMIUM" --version 2>/dev/null)"
else
    echo "chromium: installing Debian's package"
    apt_install chromium
fi

if ! command -v npm >/dev/null; then
    echo "npm: installing Debian's nodejs and npm"
    apt_install nodejs npm
fi

version_of() { node -p "require('./$NPM_DIR/node_modules/$1/package.json').version" 2>/dev/null || true; }
ort_installed=$(version_of onnxruntime-web)
tjs_installed=$(version_of @huggingface/transformers)
if [ "$ort_installed" = "$ORT_WEB_VERSION" ] && [ "$tjs_installed" = "$TRANSFORMERS_JS_VERSION" ]; then
    echo "onnxruntime-web $ort_installed and transformers.js $tjs_installed: already in $NPM_DIR/node_modules"
else
    echo "onnxruntime-web $ORT_WEB_VERSION and transformers.js $TRANSFORMERS_JS_VERSION: installing into $NPM_DIR/node_modules"
    (cd "$NPM_DIR" && npm ci --ignore-scripts --omit=optional --no-audit --no-fund --loglevel=error)
    rm -rf "$NPM_DIR/node_modules/onnxruntime-node" "$NPM_DIR/node_modules/sharp"
fi

if "$PYTHON" -c "import onnx, onnxruntime, onnxscript" 2>/dev/null; then
    echo "python: onnx, onnxruntime and onnxscript present"
else
    echo "python: installing ${PY_PACKAGES[*]}"
    "$PYTHON" -m pip install --quiet "${PY_PACKAGES[@]}"
fi

WEBNN_DIR=kit/browser/webnn
WEBNN_BIN="$WEBNN_DIR/node_modules/.chromium/chromium"
if [ "$WEBNN" = 1 ]; then
    if [ -x "$WEBNN_BIN" ]; then
        echo "webnn chromium: $("$WEBNN_BIN" --version 2>/dev/null) at $WEBNN_BIN"
    else
        echo "webnn chromium: installing @sparticuz/chromium into $WEBNN_DIR/node_modules and unpacking it"
        (cd "$WEBNN_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
        # the package unpacks itself into /tmp at run time; unpack once here instead, with node's own brotli:
        # the binary, and SwiftShader beside it (without a GPU process WebNN says it "is disabled")
        (cd "$WEBNN_DIR" && node -e "
            const fs = require('fs'), zlib = require('zlib');
            const unbrotli = (name) => zlib.brotliDecompressSync(fs.readFileSync('node_modules/@sparticuz/chromium/bin/' + name));
            fs.mkdirSync('node_modules/.chromium', { recursive: true });
            fs.writeFileSync('node_modules/.chromium/swiftshader.tar', unbrotli('swiftshader.tar.br'));
            fs.writeFileSync('node_modules/.chromium/chromium', unbrotli('chromium.br'), { mode: 0o755 });")
        (cd "$WEBNN_DIR/node_modules/.chromium" && tar -xf swiftshader.tar && rm swiftshader.tar)
        echo "webnn chromium: $("$WEBNN_BIN" --version 2>/dev/null)"
    fi
fi
