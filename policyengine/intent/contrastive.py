"""Contrastive intent space: a linear map of the embedding trained on a policy's own look-alike pairs.

MiniLM similarity follows topic ("bomb" is near "bomb"), not intent ("how to make one" vs "its history").
A concept's `examples` and `counter` examples are exactly the pairs that differ in intent but share topic, so we
train a residual linear map ``x -> normalize((I + A) x)`` on the frozen embeddings such that, leave-one-out,
each example's nearest neighbour is another example of its concept and each counter-example's (and each
sentence of a generic benign background set's) nearest neighbour is not an example. It is SetFit's idea
(contrastive training on the author's pairs) applied to a 384x384 head instead of all 22M weights: it trains in
about a second on one CPU core, is deterministic for a seed, and every decision is still a nearest-neighbour
decision that names the example and counter-example it compared.

torch is imported lazily, only when training.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import numpy as np

from .. import cache as _cache

TRAINER_VERSION = "contrastive-linear-1"
BACKGROUND_PATH = Path(__file__).with_name("background.txt")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 150
    lr: float = 0.01
    weight_decay: float = 1.0  # pull toward the identity map (keeps topic structure, only reshapes it)
    temperature: float = 0.05  # soft max over neighbours
    margin: float = 0.05
    seed: int = 0

    def stamp(self) -> str:
        return f"{TRAINER_VERSION}:{self.steps}:{self.lr}:{self.weight_decay}:{self.temperature}:{self.margin}:{self.seed}"


def background_texts(path: Path = BACKGROUND_PATH) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#"))


class Stamped(Protocol):
    def stamp(self) -> str: ...


def training_digest(model_id: str, concepts: Mapping[str, tuple[Sequence[str], Sequence[str]]],
                    background: Sequence[str], config: Stamped) -> str:
    """What a trained intent space depends on: base model, every concept's examples and counters, background,
    config (its stamp names the trainer: the map here, or the fine-tune of intent/finetune.py)."""
    h = hashlib.sha256()
    h.update(model_id.encode() + b"\0" + config.stamp().encode() + b"\0")
    for name in sorted(concepts):
        ex, ctr = concepts[name]
        h.update(name.encode() + b"\1" + "\0".join(ex).encode() + b"\1" + "\0".join(ctr).encode() + b"\2")
    h.update("\0".join(background).encode())
    return "sha256:" + h.hexdigest()


def train_map(concepts: Mapping[str, tuple[np.ndarray, np.ndarray]], background: np.ndarray,
              config: TrainConfig = TrainConfig()) -> np.ndarray:
    """Train the residual map. `concepts`: name -> (example vectors, counter vectors), L2-normalised rows.
    Returns W (d x d, float32); apply as normalize(x @ W.T)."""
    import torch

    torch.manual_seed(config.seed)
    d = background.shape[1] if background.size else next(iter(concepts.values()))[0].shape[1]
    A = torch.zeros(d, d, requires_grad=True)
    eye = torch.eye(d)
    groups = []
    all_ctr = [c for _, c in concepts.values() if len(c)]
    benign = np.concatenate([background, *all_ctr]) if all_ctr else background
    benign_t = torch.from_numpy(np.ascontiguousarray(benign, dtype=np.float32))
    for ex, ctr in concepts.values():
        if len(ex) < 2:
            continue
        groups.append((torch.from_numpy(np.ascontiguousarray(ex, dtype=np.float32)),
                       torch.from_numpy(np.ascontiguousarray(ctr, dtype=np.float32)) if len(ctr) else None))
    if not groups:
        return np.eye(d, dtype=np.float32)
    opt = torch.optim.Adam([A], lr=config.lr)
    tau, m = config.temperature, config.margin

    def smax(s: "torch.Tensor") -> "torch.Tensor":
        return tau * torch.logsumexp(s / tau, dim=1)

    for _ in range(config.steps):
        W = eye + A
        nb = torch.nn.functional.normalize(benign_t @ W.T, dim=1)
        loss = torch.zeros(())
        for ex, ctr in groups:
            ne = torch.nn.functional.normalize(ex @ W.T, dim=1)
            s_ee = ne @ ne.T - 2.0 * torch.eye(len(ne))  # leave-one-out: never your own neighbour
            s_eb = ne @ nb.T
            # an example should be nearer another example than any benign text (counters, background)
            loss = loss + torch.nn.functional.softplus((smax(s_eb) - smax(s_ee) + m) / tau).mean() * tau
            if ctr is not None:
                nc = torch.nn.functional.normalize(ctr @ W.T, dim=1)
                s_ce = nc @ ne.T
                s_cb = nc @ nb.T
                # a counter should be nearer some other benign text than any example (itself excluded: the
                # counters sit inside `benign`, so drop the best match, which is the counter itself)
                top2 = torch.topk(s_cb, 2, dim=1).values[:, 1:]
                loss = loss + torch.nn.functional.softplus((smax(s_ce) - top2[:, 0] + m) / tau).mean() * tau
        loss = loss / len(groups) + config.weight_decay * (A ** 2).sum() / d
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (eye + A).detach().numpy().astype(np.float32)


def apply_map(W: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    out = vecs @ W.T
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(out / norms, dtype=np.float32)


def cache_dir() -> Path:
    """Trained intent maps: the `intent` folder of the cache root (policyengine/cache.py)."""
    return _cache.cache_dir("intent")


#: maps handed over by a bundle (policyengine compile), by training digest: used before the disk cache
_PRELOADED: dict[str, np.ndarray] = {}


def preload(digest: str, W: np.ndarray) -> None:
    """Make a map trained elsewhere (a bundle) available for `digest`; a policy whose pairs changed has another
    digest and is trained as usual."""
    _PRELOADED[digest] = np.ascontiguousarray(W, dtype=np.float32)


def load_or_train(digest: str, concepts: Mapping[str, tuple[np.ndarray, np.ndarray]], background: np.ndarray,
                  config: TrainConfig = TrainConfig()) -> tuple[np.ndarray, bool]:
    """The trained map for `digest`, from the cache or trained now (and cached). Returns (W, from_cache)."""
    if digest in _PRELOADED:
        return _PRELOADED[digest], True
    path = cache_dir() / (digest.split(":")[-1][:32] + ".npz")
    if path.exists():
        try:
            with np.load(path) as z:
                if str(z["digest"]) == digest:
                    return z["W"].astype(np.float32), True
        except Exception:  # noqa: BLE001 - a corrupt cache entry is retrained, never trusted
            pass
    W = train_map(concepts, background, config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, W=W, digest=np.array(digest))
        os.replace(tmp, path)
    except OSError:  # read-only home: training is fast enough to redo
        pass
    return W, False
