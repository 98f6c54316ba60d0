#!/usr/bin/env bash
# The GPU check (issue 11), one command on a machine with an NVIDIA GPU:
#     bench/gpu_check.sh [DAY_DIR]          (default ../shared/data/dev/2026-11-21; after `make install`)
# It checks nvidia-smi, torch.cuda and CTranslate2, then runs the dev night with the recogniser and the judge
# on the GPU beside bare faster-whisper on cuda/float16 over the same calls (bench/gpu_check.py), and prints
# throughput (audio s per wall s, the judge's chats/s) and call_cer from ../shared/tools/score.py.
# Without a GPU it stops at once with "no CUDA device: …" and exit status 2.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${ZHIJIAN_PYTHON:-$root/.venv/bin/python}"

no_cuda() {
    echo "no CUDA device: $*" >&2
    exit 2
}

# the driver first: it needs no Python, so a machine without a GPU is told so in a fraction of a second
command -v nvidia-smi >/dev/null 2>&1 || no_cuda "nvidia-smi not found (no NVIDIA driver on this machine)"
gpus="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)" \
    || no_cuda "nvidia-smi failed: ${gpus}"
[ -n "$gpus" ] || no_cuda "nvidia-smi lists no GPU"
echo "GPU: ${gpus}"

if [ ! -x "$py" ]; then
    echo "no Python at $py: run \`make install\` first (or set ZHIJIAN_PYTHON)" >&2
    exit 1
fi

# CTranslate2 loads cuBLAS and cuDNN by name; pip's nvidia-* packages (torch's CUDA build brings some) keep
# them in site-packages/nvidia/*/lib, which the loader does not search by itself
nvidia_libs="$("$py" - <<'PY'
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
print(":".join(sorted(d for p in nvidia.__path__ for d in glob.glob(os.path.join(p, "*", "lib")))))
PY
)"
if [ -n "$nvidia_libs" ]; then
    export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

cd "$root"
# torch and CTranslate2 are asked next (gpu_check.py exits 2 with "no CUDA device: …" if either sees none)
exec "$py" bench/gpu_check.py "$@"
