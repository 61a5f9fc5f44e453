"""One small training job for tests/test_multiprocess.py, run as its own process (or several, under torchrun).

    python tests/multiprocess_job.py STEP OUT BATCH [--kill-at N | --resume] [--no-dropout]

STEP: step1-dual (MiniJoint pretraining), step1b-minipost, step2-standard, step2-minijoint or step3 (fine-tuning
on a genre task), or several of them joined by commas. BATCH: per process. The first process
writes OUT/result.safetensors (the trained tensors) and OUT/result.json (steps, tokens, FLOPs).
"""

import argparse
import json
import os
import signal
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import TrainerCallback

from hf_minimodel import (MiniModelAdapter, MiniModelConfig, XLMRobertaForDualMLM, finetune, load_task_model,
                          pretrain_mlm, train_target_tokenizer)
from hf_minimodel.sample import read_sample


class KillAt(TrainerCallback):
    """A real SIGKILL of this process after step N: nothing can clean up or save."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


STEPS = ["step1-dual", "step1b-minipost", "step2-standard", "step2-minijoint", "step3"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("step", help=f"one of {STEPS}, or several joined by commas (each then writes OUT/STEP/)")
    parser.add_argument("out", type=Path)
    parser.add_argument("batch", type=int)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-dropout", action="store_true")
    args = parser.parse_args()
    steps = args.step.split(",")
    assert set(steps) <= set(STEPS), steps

    en, ru = read_sample("en-kjv.train")[:400], read_sample("ru-synodal.train")[:400]
    tokenizers = (train_target_tokenizer(en, vocab_size=300, show_progress=False),
                  train_target_tokenizer(ru, vocab_size=250, show_progress=False))
    # Several steps in one run share the process (and its start-up, most of a tiny job's time); each starts from
    # the same seed and model as it would alone.
    for step in steps:
        run_step(step, args.out / step if len(steps) > 1 else args.out, args, (en, ru), tokenizers)


def run_step(step, out, args, texts, tokenizers):
    (en, ru), (en_tok, ru_tok) = texts, tokenizers
    dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0} if args.no_dropout else {}
    torch.manual_seed(0)
    model = XLMRobertaForDualMLM(MiniModelConfig(vocab_size=len(en_tok), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                                 intermediate_size=64, max_position_embeddings=40, mini_num_layers=1, **dropout))
    options = dict(max_steps=8, learning_rate=1e-2, batch_size=args.batch, max_seq_length=32, disable_tqdm=True, save_steps=3,
                   callbacks=[KillAt(args.kill_at)] if args.kill_at else None, resume_from_checkpoint=True if args.resume else None)
    if step == "step1-dual":
        report = pretrain_mlm(model, en_tok, en, out / "ckpt", **options)
        tensors = {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()
                   if name != "lm_head.decoder.weight" and name != "mini_lm_head.decoder.weight"}  # tied to the embeddings
        counts = {"steps": report.steps, "tokens": report.tokens, "flops": report.flops, "loss": report.final_loss}
    elif step == "step1b-minipost":
        adapter = MiniModelAdapter(model)
        mini = adapter.build_minipost(en_tok, en, out / "ckpt", mini_num_layers=1, num_new_layers=1, **options)
        tensors = {name: param.detach().clone().contiguous() for name, param in mini.named_parameters() if param.requires_grad}
        report = adapter.minipost_report
        counts = {"steps": report.steps, "tokens": report.tokens, "flops": report.flops, "loss": report.final_loss}
    elif step == "step3":
        from datasets import Dataset

        genre = [(text, i % 3) for i, text in enumerate(en)]  # lines labelled by position: a task to fit, not to learn
        train = Dataset.from_dict({"text_a": [t for t, _ in genre], "text_b": [None] * len(genre), "label": [g for _, g in genre]})
        torch.manual_seed(0)  # the new head's weights
        task_model = load_task_model(model, label_names=["a", "b", "c"])
        if args.no_dropout:
            task_model.config.classifier_dropout = 0.0
            task_model.classifier.dropout.p = 0.0
        # Step 3 keeps no checkpoints (a fine-tuning run is short), so only the equality test runs it.
        task_model, report = finetune(task_model, en_tok, train, out / "ckpt", warmup_ratio=0.0, max_steps=8,
                                      learning_rate=1e-3, batch_size=args.batch, max_seq_length=32, disable_tqdm=True)
        tensors = {name: param.detach().clone().contiguous() for name, param in task_model.named_parameters() if param.requires_grad}
        counts = {"steps": report.steps, "tokens": report.tokens, "flops": report.flops, "loss": report.final_loss}
    else:
        adapter = MiniModelAdapter(model)
        mini = adapter.export_mini_model() if step == "step2-minijoint" else None
        pack = adapter.train_embeddings(ru_tok, ru, out / "ckpt", mini_model=mini, source_tokenizer=en_tok, **options)
        tensors = {"embeddings": pack.embeddings.contiguous(), "output_bias": pack.output_bias.contiguous()}
        counts = {key: pack.metadata[f"train_{key}"] for key in ("steps", "tokens", "flops", "final_loss")}
        counts["loss"] = counts.pop("final_loss")
    if int(os.environ.get("RANK", "0")) == 0:
        out.mkdir(parents=True, exist_ok=True)
        save_file(tensors, out / "result.safetensors")
        (out / "result.json").write_text(json.dumps(counts))


if __name__ == "__main__":
    main()
