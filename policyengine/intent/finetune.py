"""Fine-tuned intent space ("<base>+finetune"): all weights of the base model trained on the policy's own pairs.

SetFit's recipe (Tunstall et al., 2022, "Efficient Few-Shot Learning Without Prompts"): contrastive pairs built
from a handful of labelled sentences, trained with a cosine-similarity loss. Here the labelled sentences are the
policy's own text, never dataset rows (docs/intent.md: training on whole datasets teaches their style):

  (example, another example of its concept)   similar      (`positives` per example)
  (example, a counter-example of its concept) dissimilar   (when the concept has counters)
  (example, a sentence of the background set) dissimilar

After training, examples, counter-examples and message chunks are all embedded by the tuned model; matching is the
language's usual rule, so every decision still names the nearest example and counter-example (in the tuned space)
with their scores. The tuned model is an artifact of compilation: cached under
``$POLICYENGINE_CACHE/finetune/<digest>`` (the digest covers the base model, every trained concept's examples and
counters, the background set and the configuration, seed included), and shipped inside bundles.

Its similarity scale is not the base model's (examples are pulled together, so near-topic text scores high):
thresholds written for the base model do not carry over. Calibrate them (`policyengine calibrate`) on labelled rows
of your own traffic; docs/intent.md measures how far such a calibration transfers to other sources.

torch and sentence-transformers are imported only when a "+finetune" policy is compiled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import cache as _cache
from .contrastive import background_texts, training_digest

TRAINER_VERSION = "finetune-cosine-1"


@dataclass(frozen=True)
class FinetuneConfig:
    positives: int = 2  # (example, example) pairs per example
    epochs: int = 1
    batch: int = 16
    lr: float = 2e-5
    warmup: float = 0.1  # share of steps with a linear warm-up, then linear decay
    min_steps: int = 60  # a small policy repeats its pairs (more epochs) until it gets this many optimiser steps
    loss: str = "cosine"  # "cosine": CosineSimilarityLoss (SetFit's); "online": OnlineContrastiveLoss
    seed: int = 0

    def stamp(self) -> str:
        return TRAINER_VERSION + ":" + json.dumps(asdict(self), sort_keys=True)


def build_pairs(concepts: Mapping[str, tuple[Sequence[str], Sequence[str]]], background: Sequence[str],
                positives: int, seed: int) -> list[tuple[str, str, float]]:
    """(text, text, 1.0 similar | 0.0 dissimilar), shuffled with `seed`; deterministic."""
    rng = random.Random(seed)
    bg = list(background)
    pairs: list[tuple[str, str, float]] = []
    for name in sorted(concepts):
        ex, ctr = list(concepts[name][0]), list(concepts[name][1])
        for i, e in enumerate(ex):
            others = [x for j, x in enumerate(ex) if j != i]
            for o in rng.sample(others, min(positives, len(others))):
                pairs.append((e, o, 1.0))
            if ctr:
                pairs.append((e, rng.choice(ctr), 0.0))
            if background:
                pairs.append((e, rng.choice(bg), 0.0))
    rng.shuffle(pairs)
    return pairs


def train(base_path: str, pairs: Sequence[tuple[str, str, float]], config: FinetuneConfig,
          threads: int | None = None, log: Any = None) -> Any:
    """Fine-tune every weight of the SentenceTransformer at `base_path` on `pairs` (CosineSimilarityLoss, AdamW,
    linear warm-up and decay, gradient norm 1); returns the model in eval mode. The loop is written out because
    sentence-transformers' `fit` needs `datasets` and `accelerate`, which policyengine does not install."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import losses  # type: ignore[no-redef]
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    from ..matchers.embedders import offline_quiet

    offline_quiet()
    disable_progress_bars()  # no shard bars when loading and saving
    hf_logging.disable_progress_bar()
    before = torch.get_num_threads()
    torch.set_num_threads(threads or max(1, min(os.cpu_count() or 1, 4)))
    try:
        torch.manual_seed(config.seed)
        model = SentenceTransformer(base_path, device="cpu")
        loss = {"cosine": losses.CosineSimilarityLoss, "online": losses.OnlineContrastiveLoss}[config.loss](model)
        no_decay = ("bias", "LayerNorm.bias", "LayerNorm.weight")
        params = list(loss.named_parameters())
        opt = torch.optim.AdamW([
            {"params": [p for n, p in params if not any(nd in n for nd in no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in params if any(nd in n for nd in no_decay)], "weight_decay": 0.0}],
            lr=config.lr)
        per_epoch = max(1, (len(pairs) + config.batch - 1) // config.batch)
        epochs = max(config.epochs, -(-config.min_steps // per_epoch))
        steps = epochs * per_epoch
        warm = max(1, int(config.warmup * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(  # step s of 0..steps-1: warm-up from lr/warm, never 0
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
        g = torch.Generator().manual_seed(config.seed)
        model.train()
        step = 0
        for _ in range(epochs):
            order = torch.randperm(len(pairs), generator=g).tolist()
            for k in range(0, len(order), config.batch):
                chunk = [pairs[i] for i in order[k:k + config.batch]]
                feats = [model.preprocess([a for a, _, _ in chunk]), model.preprocess([b for _, b, _ in chunk])]
                value = loss(feats, torch.tensor([y for _, _, y in chunk], dtype=torch.float32))
                opt.zero_grad()
                value.backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                if log is not None and (step % 20 == 0 or step == steps):
                    log(f"fine-tune step {step}/{steps} loss {value.item():.4f}")
        model.eval()
        return model
    finally:
        torch.set_num_threads(before)


def cache_dir() -> Path:
    """Fine-tuned models: the `finetune` folder of the cache root (policyengine/cache.py)."""
    return _cache.cache_dir("finetune")


def entry(digest: str) -> Path:
    return cache_dir() / digest.split(":")[-1][:32]


#: tuned models handed over by a bundle (an extracted directory), by training digest: used before the disk cache
_PRELOADED: dict[str, Path] = {}
_LOADED: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


def preload(digest: str, directory: Path) -> None:
    _PRELOADED[digest] = Path(directory)


def stamped(directory: Path, digest: str) -> bool:
    try:
        return json.loads((directory / "policyengine.json").read_text())["digest"] == digest
    except (OSError, ValueError, KeyError, TypeError):
        return False


def with_extra(digest: str, extra_pairs: Sequence[tuple[str, str, float]]) -> str:
    """The training digest once `extra_pairs` join the policy's own (unchanged when there are none)."""
    if not extra_pairs:
        return digest
    import hashlib

    h = hashlib.sha256(digest.encode())
    for a, b, y in extra_pairs:
        h.update(f"{a}\0{b}\0{y!r}\1".encode())
    return "sha256:" + h.hexdigest()


def load_or_train(base_id: str, concepts: Mapping[str, tuple[Sequence[str], Sequence[str]]],
                  config: FinetuneConfig = FinetuneConfig(), log: Any = None,
                  extra_pairs: Sequence[tuple[str, str, float]] = ()) -> tuple[Path, dict[str, Any]]:
    """The tuned model's directory for these concepts: a bundle's, the cache's, or trained now (and cached).
    `extra_pairs` (text, text, label), for experiments (the research script that used them is in git history),
    are appended to the policy's own pairs and the whole list reshuffled with seed + 7; they are part of the digest.
    Returns (directory, info) with info = {digest, cached, seconds, pairs, config}."""
    from ..matchers.embedders import resolve_model_path

    background = background_texts()
    digest = with_extra(training_digest(base_id, concepts, background, config), extra_pairs)
    info: dict[str, Any] = {"digest": digest, "config": config.stamp(), "background": len(background)}
    for where in (_PRELOADED.get(digest), entry(digest)):
        if where is not None and stamped(where, digest):
            return where, {**info, "cached": True, "seconds": 0.0}
    pairs = build_pairs(concepts, background, config.positives, config.seed)
    if extra_pairs:
        pairs += extra_pairs
        random.Random(config.seed + 7).shuffle(pairs)
    t0 = time.perf_counter()
    model = train(resolve_model_path(base_id), pairs, config, log=log)
    seconds = round(time.perf_counter() - t0, 3)
    stamp = {"digest": digest, "base": base_id, "seconds": seconds, "pairs": len(pairs), "config": config.stamp()}

    def write(d: Path) -> None:
        model.save(str(d))
        (d / "policyengine.json").write_text(json.dumps(stamp))

    return install(digest, write), {**info, "cached": False, "seconds": seconds, "pairs": len(pairs)}


def install(digest: str, write: Callable[[Path], None]) -> Path:
    """Put a tuned model into the cache entry for `digest`: `write` fills a fresh directory (the model files and
    policyengine.json), which then replaces the entry in one rename. When the cache cannot be written, the model
    stays in a temporary directory, used by this process only. Returns where the model is."""
    import tempfile

    target = entry(digest)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    except OSError:
        tmp = Path(tempfile.mkdtemp(prefix="policyengine-finetune-"))
    write(tmp)
    try:
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError:  # read-only cache, or another process got there first: use our copy
        return tmp
    return target


class TunedEmbedder:
    """The tuned SentenceTransformer behind the Embedder protocol, under the policy's model id."""

    backend = "torch"
    tuned = True  # Engine keeps it instead of tuning again

    def __init__(self, directory: Path, model_id: str, threads: int = 1, info: dict[str, Any] | None = None):
        from ..matchers.embedders import SentenceTransformerEmbedder

        self.directory = directory
        self.model_id = model_id
        self.info = info or {}
        self._inner = SentenceTransformerEmbedder(str(directory), threads=threads)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._inner.encode(texts)

    @property
    def dimension(self) -> int:
        return self._inner.dimension


def tuned_embedder(model_id: str, concepts: Mapping[str, tuple[Sequence[str], Sequence[str]]], threads: int = 1,
                   log: Any = None, extra_pairs: Sequence[tuple[str, str, float]] = ()) -> TunedEmbedder:
    """One tuned embedder per process per (digest, threads), trained or loaded on first use."""
    from ..matchers.embedders import split_model_id

    base_id = split_model_id(model_id)[0]
    with _LOCK:
        directory, info = load_or_train(base_id, concepts, log=log, extra_pairs=extra_pairs)
        key = (info["digest"], threads)
        if key not in _LOADED:
            _LOADED[key] = TunedEmbedder(directory, model_id, threads, info)
        emb = _LOADED[key]
        emb.info = info  # this engine's view: trained now, or found in a bundle or the cache
        return emb
