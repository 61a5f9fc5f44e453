"""reproduce.py's --work folder: every stage is made once, atomically (a killed run never leaves a folder that looks
finished), and read back on the next run; the folder's settings are checked, so stages made with other settings are
never mixed in."""

import json
import time
from pathlib import Path

from hf_minimodel import initialisation
from hf_minimodel.saving import atomic_directory, save_trained

import report


def spread_tag(init: str, noise: float | None = None) -> str:
    """`noise{n}` where the unset rows' spread (`noise`, else the init's own) is not 1, else "": a part of the names of
    cached packs and result files. 1 went unnamed before the fallback rows moved to their script's mean, so files
    made with rows drawn at spread 1 keep their names and are never taken for today's."""
    noise = initialisation.own_noise(init) if noise is None else noise
    return f"noise{noise:g}" if noise is not None and noise != 1.0 else ""


def cached_folder(folder: Path, make) -> Path:
    """`make(tmp)` fills the folder once, atomically: a killed run never leaves a folder that looks finished."""
    if not folder.exists():
        with atomic_directory(folder) as tmp:
            make(tmp)
    return folder


def cached_step(folder: Path, make, stage, *labels) -> Path:
    """A trained model's folder, made once: `make()` gives the model, its tokenizer (or None) and JSON records."""
    if not folder.exists():
        started = time.perf_counter()
        model, tokenizer, records = make()
        save_trained(folder, model, tokenizer, records=records)
        progress(stage, *labels, since=started)
    return folder


def progress(stage, *labels, since=None, note=""):
    seconds = f"{time.perf_counter() - since:8.1f} s" if since is not None else ""
    print(f"{stage:<8} {' '.join(labels):<40} {seconds} {note}".rstrip(), flush=True)


def cached_json(path: Path, compute):
    if not path.exists():
        report.write_json(path, compute())
    return json.loads(path.read_text())


def check_settings(args, defaults, not_cached) -> None:
    """The folder's settings.json (written by its first run) against this run's, `not_cached` left out: what the
    stages do not depend on. `defaults` (the arguments of a run without flags) stand in for settings added since."""
    settings = {k: v for k, v in report.json_settings(args).items() if k not in not_cached}
    path = args.work / "settings.json"
    if not path.exists():
        return report.write_json(path, settings)
    saved, defaults = json.loads(path.read_text()), report.json_settings(defaults)
    changed = [f"--{k.replace('_', '-')} {saved.get(k, defaults[k])} (now {v})" for k, v in settings.items()
               if saved.get(k, defaults[k]) != v]
    if changed:
        raise SystemExit(f"{args.work} holds stages made with other settings: {', '.join(changed)}. Choose another "
                         "--work, or delete it to start over")
