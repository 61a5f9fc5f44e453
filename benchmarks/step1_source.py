"""Step 1 on a real body: continue a pretrained encoder as an English masked LM, plain or MiniJoint's dual model, and
keep the model at chosen steps (the step-1 budget is a lever of step 2: its MLM head is step 2's only signal).

A recipe over hf_minimodel's API: the body from `e5_small()` or `all_minilm_l6()` (offline), its vocabulary kept
frozen, the new MLM head(s) at --head-lr and the body at --body-lr, on the KJV and WEB train split.

    python benchmarks/step1_source.py --body e5-small --steps 2000 --batch-size 16 --keep 250 500 1000 2000 \\
        --output runs/levers/e5-plain --save-steps 250 --resume    # --resume: picks up where a lost session stopped
    python benchmarks/step1_source.py --body minilm --dual-layers 2 --output runs/levers/minilm-dual
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, TrainerCallback, XLMRobertaForMaskedLM

from hf_minimodel import XLMRobertaForDualMLM, all_minilm_l6, e5_small, pretrain_mlm
from hf_minimodel.tasks.bible_tasks import language_texts
from hf_minimodel.training import last_whole_checkpoint

BODIES = {"e5-small": e5_small, "minilm": all_minilm_l6}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--body", choices=BODIES, default="e5-small")
    parser.add_argument("--dual-layers", type=int, help="MiniJoint: the second head after this many layers")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--body-lr", type=float, default=1e-5)
    parser.add_argument("--keep", type=int, nargs="+", help="steps at which to save the model (default: the last)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPU)")
    parser.add_argument("--save-steps", type=int,
                        help="a Trainer checkpoint every N steps in OUTPUT/ckpt (the last two kept), for --resume")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint in OUTPUT/ckpt, if there is one (a run spans sessions)")
    parser.add_argument("--output", type=Path, required=True)
    return parser.parse_args(argv)


class Keep(TrainerCallback):
    """Saves the model and its tokenizer as `output/step-N` at the chosen steps, with the last losses logged."""

    def __init__(self, output, tokenizer, steps):
        self.output, self.tokenizer, self.steps = output, tokenizer, set(steps)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps:
            folder = self.output / f"step-{state.global_step}"
            model.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)
            losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
            (folder / "log.json").write_text(json.dumps({"step": state.global_step, "loss": losses[-5:]}))


def main(argv=None):
    args = parse_args(argv)
    body = BODIES[args.body]()
    torch.manual_seed(args.seed)
    model = (XLMRobertaForMaskedLM.from_pretrained(body) if args.dual_layers is None
             else XLMRobertaForDualMLM.from_pretrained(body, mini_num_layers=args.dual_layers))
    tokenizer = AutoTokenizer.from_pretrained(body)
    english = language_texts("en")  # KJV and WEB
    resume = last_whole_checkpoint(args.output / "ckpt") if args.resume else None  # None where there is none yet
    if args.resume and not args.save_steps:
        print("note: --resume without --save-steps writes no checkpoint, so this run cannot be resumed in turn")
    print(f"resuming from {resume}" if resume else "starting at step 0", flush=True)
    started = time.perf_counter()
    report = pretrain_mlm(model, tokenizer, english, args.output / "ckpt", max_steps=args.steps,
                          learning_rate=args.head_lr, body_learning_rate=args.body_lr, batch_size=args.batch_size,
                          max_seq_length=args.max_seq_length, weight_decay=0.01, train_word_embeddings=False,
                          seed=args.seed, callbacks=[Keep(args.output, tokenizer, args.keep or [args.steps])],
                          logging_steps=25, disable_tqdm=True, save_steps=args.save_steps, resume_from_checkpoint=resume,
                          **({"bf16": True} if args.bf16 else {}))
    (args.output / "log_history.json").write_text(json.dumps(report.log_history))
    (args.output / "step1.json").write_text(json.dumps(
        {"settings": {k: str(v) for k, v in vars(args).items()}, "steps": report.steps, "tokens": report.tokens,
         "flops": report.flops, "seconds": round(time.perf_counter() - started, 1), "final_loss": report.final_loss,
         "resumed_from": resume,  # then seconds count this part only
         "torch_threads": torch.get_num_threads()}, indent=2))
    print(f"step 1 done: {report.steps} steps, final loss {report.final_loss}, {report.seconds:.0f} s")


if __name__ == "__main__":
    main()
