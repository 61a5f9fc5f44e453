"""Step-2 speed: what a step of target-embedding training costs, per variant, measured side by side.

Variants (random weights; only word embeddings and output bias train, as in step 2):
  (a) stock      what a user writes today: stock XLMRobertaForMaskedLM, body frozen, logits at every position;
  (b) standard   our standard approach: the same full model, MLM head only at masked positions;
  (c) mini-k     our mini-models: the bottom k layers of the same model and its head (k = 1, 2, 4).
All variants share one set of weights and one AdamW (mini-models are views onto the full model's bottom layers),
so memory holds one model, and the variants alternate within every round. Reported: medians over rounds of the
forward+backward time and of the whole step (with the optimizer), tokens per second, memory (peak above the
resting model on a GPU; activations saved for backward on the CPU), and beside every measured speed-up the one predicted by `hf_minimodel.flops` for the same computation.

    python benchmarks/step_speed.py                               # CPU, fp32: base and large geometry, 50k and 250k
    python benchmarks/step_speed.py --device cuda --dtype bf16 --batch-size 32 --seq-len 512
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

from hf_minimodel import MiniModelConfig, MiniModelForMaskedLM, freezing
from hf_minimodel.flops import mlm_step_flops
from hf_minimodel.mini_model import cut_mini_model
from hf_minimodel.training import labelled_mlm_loss

GEOMETRIES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--geometries", nargs="+", default=["base", "large"], choices=sorted(GEOMETRIES))
    parser.add_argument("--vocabs", nargs="+", type=int, default=[50_000, 250_000])
    parser.add_argument("--depths", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per variant, alternating (median reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/step_speed.json"))
    return parser.parse_args()


class PeakMemory:
    """Memory of one step above the resting model.

    On a GPU: CUDA's peak-allocated counter. On the CPU the process's resident set does not show it (the allocator
    keeps freed pages after the warm-up), so there it counts what actually differs between variants: the bytes of
    the tensors autograd saves for the backward pass (each storage once), the activation memory of the step.
    """

    def __init__(self, device, parameters=()):
        self.device = torch.device(device)
        self.parameter_storages = {p.untyped_storage().data_ptr() for p in parameters}

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.storages = {}

            def pack(tensor):
                storage = tensor.untyped_storage()
                if storage.data_ptr() not in self.parameter_storages:  # weights saved for backward are not new memory
                    self.storages[storage.data_ptr()] = storage.nbytes()
                return tensor

            self.hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)
            self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self.base
        else:
            self.hooks.__exit__(*exc)
            self.bytes = sum(self.storages.values())


def mini_view(full: XLMRobertaForMaskedLM, depth: int) -> MiniModelForMaskedLM:
    """A depth-`depth` mini-model that shares the full model's tensors, so every variant trains the very same
    embedding matrix."""
    config = MiniModelConfig.from_base_config(full.config, mini_num_layers=depth).for_mini_model(num_new_layers=0)
    return cut_mini_model(full, config, share=True)


def make_step(model, labelled_only: bool, autocast):
    def forward_backward(batch):
        with autocast():
            if labelled_only:
                loss = labelled_mlm_loss(model, batch)[1]
            else:
                loss = model(**batch).loss
        loss.backward()

    return forward_backward


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def masked_batch(vocab: int, args) -> tuple[dict, int]:
    """One batch of random tokens, 15% of them masked (all <mask>), and how many positions are masked."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, vocab, (args.batch_size, args.seq_len), generator=generator)
    labels = torch.full_like(input_ids, -100)
    masked = torch.rand(input_ids.shape, generator=generator) < 0.15
    labels[masked] = input_ids[masked]
    input_ids[masked] = vocab - 1  # <mask>
    batch = {"input_ids": input_ids.to(args.device), "attention_mask": torch.ones_like(input_ids).to(args.device), "labels": labels.to(args.device)}
    return batch, int(masked.sum())


def summarize(variants, timings, args, positions: int, tokens: int) -> dict:
    """Per variant: medians of the timings, FLOPs, memory, and the speed-ups over the stock and standard ones."""
    results = {}
    for name, (model, labelled_only) in variants.items():
        flops = mlm_step_flops(model, args.batch_size, args.seq_len, positions if labelled_only else tokens)
        fb = statistics.median(timings[name]["forward_backward"])
        st = statistics.median(timings[name]["step"])
        results[name] = {"layers": len(model.roberta.encoder.layer), "flops": flops, "forward_backward_s": fb, "step_s": st,
                         "tokens_per_s": tokens / st, "memory_mb": statistics.median(timings[name]["peak_bytes"]) / 2**20,
                         "all_forward_backward_s": timings[name]["forward_backward"], "all_step_s": timings[name]["step"]}
    for name, row in results.items():
        for reference in ("stock", "standard"):
            ref = results[reference]
            row[f"speedup_vs_{reference}"] = ref["forward_backward_s"] / row["forward_backward_s"]
            row[f"step_speedup_vs_{reference}"] = ref["step_s"] / row["step_s"]
            row[f"flops_speedup_vs_{reference}"] = ref["flops"] / row["flops"]
            row[f"share_of_flops_speedup_vs_{reference}"] = row[f"speedup_vs_{reference}"] / row[f"flops_speedup_vs_{reference}"]
    return results


def run(geometry: str, vocab: int, args) -> dict:
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    config = XLMRobertaConfig(vocab_size=vocab, max_position_embeddings=args.seq_len + 2, **GEOMETRIES[geometry])
    torch.manual_seed(0)
    full = XLMRobertaForMaskedLM(config).to(args.device).train()
    freezing.for_step2(full)  # what step 2 trains, decided where the library decides it
    optimizer = torch.optim.AdamW([p for p in full.parameters() if p.requires_grad], lr=1e-4)
    autocast = (lambda: torch.autocast(torch.device(args.device).type, dtype=dtype)) if dtype != torch.float32 else (lambda: torch.autocast("cpu", enabled=False))

    batch, positions = masked_batch(vocab, args)
    tokens = args.batch_size * args.seq_len

    variants = {"stock": (full, False), "standard": (full, True)}
    variants.update({f"mini-{k}": (mini_view(full, k), True) for k in args.depths})
    timings = {name: {"forward_backward": [], "step": [], "peak_bytes": []} for name in variants}
    steps = {name: make_step(model, labelled_only, autocast) for name, (model, labelled_only) in variants.items()}

    for name, step in steps.items():  # warm-up: allocator, kernels, first-touch of optimizer state
        step(batch)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    order = list(variants)
    for round_ in range(args.rounds):
        for name in order[round_ % len(order):] + order[: round_ % len(order)]:  # rotate who goes first
            sync(args.device)
            with PeakMemory(args.device, full.parameters()) as memory:
                start = time.perf_counter()
                steps[name](batch)
                sync(args.device)
                middle = time.perf_counter()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                sync(args.device)
                end = time.perf_counter()
            timings[name]["forward_backward"].append(middle - start)
            timings[name]["step"].append(end - start)
            timings[name]["peak_bytes"].append(memory.bytes)
        print(f"  {geometry} {vocab // 1000}k round {round_ + 1}/{args.rounds}: "
              + ", ".join(f"{n} {timings[n]['step'][-1]:.2f}s" for n in order), flush=True)

    results = summarize(variants, timings, args, positions, tokens)
    del full, optimizer, variants, steps
    return {"geometry": geometry, "vocab_size": vocab, "masked_positions": positions, "tokens": tokens, "variants": results}


def main():
    args = parse_args()
    if torch.device(args.device).type == "cpu":
        print(f"CPU: {torch.get_num_threads()} threads")
    runs = []
    for geometry in args.geometries:
        for vocab in args.vocabs:
            runs.append(run(geometry, vocab, args))
            table(runs[-1])
    machine = {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "device": args.device,
               "gpu": torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else None}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.output.write_text(json.dumps({"settings": settings, "machine": machine, "runs": runs}, indent=2))
    print(f"written to {args.output}")


def table(run_: dict) -> None:
    print(f"\n{run_['geometry']} geometry, {run_['vocab_size']:,} vocabulary, {run_['tokens']} tokens/step, {run_['masked_positions']} masked")
    print(f"{'variant':<9} {'layers':>6} {'fwd+bwd s':>9} {'step s':>7} {'tok/s':>7} {'mem MB':>8} "
          f"{'vs (a)':>7} {'FLOPs':>6} {'vs (b)':>7} {'FLOPs':>6} {'share':>6}")
    for name, row in run_["variants"].items():
        print(f"{name:<9} {row['layers']:>6} {row['forward_backward_s']:>9.3f} {row['step_s']:>7.3f} {row['tokens_per_s']:>7.0f} "
              f"{row['memory_mb']:>8.0f} {row['speedup_vs_stock']:>6.2f}x {row['flops_speedup_vs_stock']:>5.2f}x "
              f"{row['speedup_vs_standard']:>6.2f}x {row['flops_speedup_vs_standard']:>5.2f}x {row['share_of_flops_speedup_vs_standard']:>6.0%}")
    print("speed-ups are of forward+backward time; FLOPs: the speed-up hf_minimodel.flops predicts; share: measured / predicted vs (b)")


if __name__ == "__main__":
    main()
