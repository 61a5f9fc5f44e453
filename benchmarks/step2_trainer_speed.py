"""Step 2 as a user runs it on a GPU: `MiniModelAdapter.train_embeddings` through the HF Trainer (bf16), for the
standard approach, MiniJoint and MiniPost on one randomly initialised dual model of XLM-R's geometry, side by side.

Where `step_speed.py` times bare forward+backward passes, this times whole Trainer steps (data collation, masking,
optimizer, scheduler, logging): what a user waits for. Weights are random (speed does not depend on them); text is
the embedded French sample, so it needs no download. Reported: the median seconds per step after a warm-up, tokens
per second and the speed-up over the standard approach, measured in one process, variants interleaved in rounds.

    python benchmarks/step2_trainer_speed.py --device cuda --bf16 --batch-size 32 --seq-len 256
    python benchmarks/step2_trainer_speed.py --geometry small --steps 6 --rounds 1     # a CPU smoke run
"""

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import TrainerCallback

from hf_minimodel import MiniModelAdapter, MiniModelConfig, XLMRobertaForDualMLM, train_target_tokenizer
from hf_minimodel.sample import read_sample

GEOMETRIES = {
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=12, intermediate_size=1536),  # e5-small
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


FRENCH = "fr-segond.train"  # the embedded public-domain sample (hf_minimodel/data)


class StepTimes(TrainerCallback):
    """Wall-clock seconds of every optimizer step (the GPU synchronised at each end, so a step's time is its own)."""

    def __init__(self):
        self.times, self.mark = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.mark = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.mark)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--geometry", default="base", choices=sorted(GEOMETRIES))
    parser.add_argument("--source-vocab", type=int, default=250_002, help="the full model's vocabulary (XLM-R's)")
    parser.add_argument("--target-vocab", type=int, default=16_000)
    parser.add_argument("--mini-num-layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40, help="steps per run; the first quarter is warm-up, not timed")
    parser.add_argument("--rounds", type=int, default=2, help="runs per variant, interleaved")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/step2_trainer_speed.json"))
    return parser.parse_args()


def main():
    args = parse_args()
    french = read_sample(FRENCH)
    # Enough text for every step of every run (each sample verse is about 35 tokens).
    text = french * max(1, (args.steps * args.batch_size * args.seq_len) // (35 * len(french)) + 1)
    tokenizer = train_target_tokenizer(french, vocab_size=args.target_vocab, show_progress=False)
    config = MiniModelConfig(vocab_size=args.source_vocab, max_position_embeddings=args.seq_len + 2,
                             mini_num_layers=args.mini_num_layers, **GEOMETRIES[args.geometry])
    torch.manual_seed(0)
    dual = XLMRobertaForDualMLM(config)
    adapter = MiniModelAdapter(dual)
    device_kwargs = dict(bf16=args.bf16, use_cpu=args.device == "cpu")
    with tempfile.TemporaryDirectory() as scratch:
        minipost = adapter.build_minipost(tokenizer, french, Path(scratch) / "1b", max_steps=1, batch_size=2,
                                          max_seq_length=args.seq_len, disable_tqdm=True, **device_kwargs)
        variants = {"standard": None, "minijoint": adapter.export_mini_model(), "minipost": minipost}
        times = {name: [] for name in variants}
        reports = {}
        for round_ in range(args.rounds):
            for name, mini in variants.items():
                clock = StepTimes()
                pack = adapter.train_embeddings(
                    tokenizer, text, Path(scratch) / f"{name}-{round_}", mini_model=mini, init="random",
                    max_steps=args.steps, batch_size=args.batch_size, max_seq_length=args.seq_len, learning_rate=1e-3,
                    callbacks=[clock], disable_tqdm=True, **device_kwargs)
                times[name] += clock.times[args.steps // 4:]
                reports[name] = {"flops_per_step": pack.metadata["train_flops"] / pack.metadata["train_steps"],
                                 "layers": (mini.config.num_hidden_layers if mini is not None else config.num_hidden_layers)}
                print(f"round {round_} {name}: median {statistics.median(clock.times[args.steps // 4:]):.4f} s/step", flush=True)
    tokens = args.batch_size * args.seq_len
    standard = statistics.median(times["standard"])
    rows = {}
    for name, values in times.items():
        median = statistics.median(values)
        rows[name] = {**reports[name], "median_step_s": median, "tokens_per_s": tokens / median,
                      "speedup_vs_standard": standard / median,
                      "flops_ratio_vs_standard": reports["standard"]["flops_per_step"] / reports[name]["flops_per_step"],
                      "timed_steps": len(values)}
    result = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "transformers": transformers.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "threads": torch.get_num_threads()},
        "variants": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name:10s} {row['layers']:2d} layers  {row['median_step_s'] * 1000:8.1f} ms/step  "
              f"{row['tokens_per_s']:9.0f} tokens/s  {row['speedup_vs_standard']:.2f}x faster  "
              f"({row['flops_ratio_vs_standard']:.2f}x fewer FLOPs)")


if __name__ == "__main__":
    main()
