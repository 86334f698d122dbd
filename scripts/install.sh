#!/usr/bin/env bash
# Idempotent install of odconnect into ./.venv (or $ODCONNECT_VENV).
#
# Why detectron2 is installed this way: detectron2 is not on PyPI under its own
# name. `sal-detectron2==0.7.2` is upstream detectron2 (commit a59f056) published
# only as a cp310 wheel. Its Python code runs on 3.11, so we fetch that wheel for
# cp310, keep the `detectron2` package and drop the compiled `_C` extension
# (Faster R-CNN and RetinaNet use torchvision's ops and need no `_C`). Its
# runtime needs are declared in pyproject.toml.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ODCONNECT_VENV:-$here/.venv}"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3
D2_VERSION=0.7.2

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
vpy="$venv/bin/python"
"$vpy" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true

# pip's "WARNING: Location" lines are noise; its exit status is not: a failed install (a full
# disk, a package the index lacks) stops here with pip's own message, not later at an import.
pipq() {
  local out
  if ! out="$("$vpy" -m pip install -q "$@" 2>&1)"; then
    printf '%s\n' "$out" >&2
    echo "install.sh: pip install $* failed (see above)" >&2
    exit 1
  fi
  printf '%s\n' "$out" | grep -v "^WARNING: Location" || true
}

# torch first, pinned: the versions this project is tested with.
"$vpy" -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1')" 2>/dev/null \
  || pipq torch==2.14.1 torchvision==0.29.1

# the project and its runtime + test needs (editable, so `odconnect` runs from the checkout)
pipq -e "$here[test]"

site="$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if ! "$vpy" -c "import importlib.metadata as m, sys; sys.exit(m.version('sal-detectron2') != '$D2_VERSION')" 2>/dev/null \
   || [ ! -d "$site/detectron2" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  pipq --no-deps --only-binary=:all: --python-version 3.10 --implementation cp \
    --target "$tmp/t" "sal-detectron2==$D2_VERSION"
  rm -f "$tmp"/t/detectron2/_C*.so
  rm -rf "$site/detectron2" "$site"/sal_detectron2-*.dist-info
  # only the library and its metadata: the wheel's top-level `tools` package would shadow others
  mv "$tmp/t/detectron2" "$tmp"/t/sal_detectron2-*.dist-info "$site/"
fi

"$vpy" -c "import detectron2, torch; print('odconnect install ok: detectron2', detectron2.__version__, 'torch', torch.__version__)"
