"""Trained concepts: a logistic-regression head per concept, learned from labelled rows in the policy's space.

A concept with `train "rows.jsonl"` is decided by p(unsafe | chunk) = sigmoid(w . x + b), where x is the chunk's
embedding in the policy's space (after the `+contrastive` map, when the model has one). The rows of its training
files, its `examples` (unsafe) and its `counter` examples (safe) are the training set. Every decision is explained by
the probability, the threshold and the training rows nearest to the chunk on each side.

Building is an explicit step (`build_heads`), cached on disk by a digest of everything that determines the weights
(the model and space, the rows' texts and labels, the examples, the counters, this module's configuration), so a
second process loads the weights instead of training. Row embeddings are cached the same way, by model and texts.

Training is deterministic: scikit-learn's LogisticRegression (lbfgs, no random state involved), on rows in file
order, with sample weights that balance the two labels and damp large sources (each (file, label) group weighs
sqrt(its size)), so one big file does not decide what "unsafe" means for every concept.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..training import TrainingRow

HEAD_VERSION = "logreg-v1"
#: L2 regularisation strength (scikit-learn's C: larger = weaker); embeddings are unit vectors
C = 4.0
#: training rows shown per side (unsafe / safe) in an explanation
NEAREST_PER_SIDE = 2


def cache_dir() -> Path:
    """Trained heads and the training-row embedding store: the `heads` folder of the cache root (cache.py)."""
    from ..cache import cache_dir as root

    return root("heads")


@dataclass(frozen=True)
class TrainedHead:
    """A concept's classifier plus what explains it: its training rows (texts, ids, labels) and their vectors
    in the space the head decides in."""

    concept: str
    w: np.ndarray  # (d,)
    b: float
    rows: tuple[TrainingRow, ...]  # every training row, examples and counters included (file "<policy>")
    vecs: np.ndarray = field(repr=False)  # (n, d) row vectors in the head's space, unit length
    digest: str = ""
    info: dict[str, object] = field(default_factory=dict, compare=False)
    labels: np.ndarray = field(init=False, repr=False, compare=False)  # rows' labels (True = unsafe), derived

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", np.fromiter((r.unsafe for r in self.rows), dtype=bool,
                                                       count=len(self.rows)))

    def probabilities(self, vecs: np.ndarray) -> np.ndarray:
        """p(unsafe) for each row of `vecs` (in the head's space)."""
        if vecs.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        z = vecs @ self.w + self.b
        return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)

    def nearest(self, vec: np.ndarray, per_side: int = NEAREST_PER_SIDE) -> list[tuple[TrainingRow, float]]:
        """The training rows most similar to `vec` (cosine), `per_side` of each label, unsafe first."""
        sims = self.vecs @ vec
        out: list[tuple[TrainingRow, float]] = []
        for side in (True, False):
            idx = np.flatnonzero(self.labels == side)
            if idx.size == 0:
                continue
            k = min(per_side, idx.size)
            top = idx[np.argpartition(-sims[idx], k - 1)[:k]]
            top = top[np.argsort(-sims[top], kind="stable")]
            out += [(self.rows[i], float(sims[i])) for i in top]
        return out

    def max_row_similarity(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each row of `vecs`: the best cosine to a training row and that row's index."""
        if vecs.shape[0] == 0 or self.vecs.shape[0] == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        sims = vecs @ self.vecs.T
        i = np.argmax(sims, axis=1)
        return sims[np.arange(len(i)), i], i


def training_set(name: str, examples: Sequence[str], counter: Sequence[str],
                 rows: Sequence[TrainingRow]) -> tuple[TrainingRow, ...]:
    """The rows a concept trains on: its examples (unsafe) and counters (safe) as rows of file "<policy>", then
    its training files' rows, in order."""
    own = [TrainingRow(f"{name}/example/{i}", t, True, None, "<policy>", 0) for i, t in enumerate(examples)]
    own += [TrainingRow(f"{name}/counter/{i}", t, False, None, "<policy>", 0) for i, t in enumerate(counter)]
    return (*own, *rows)


def sample_weights(rows: Sequence[TrainingRow]) -> np.ndarray:
    """Each (file, label) group weighs sqrt(its size); then the two labels weigh the same in total."""
    groups: dict[tuple[str, bool], int] = {}
    for r in rows:
        groups[(r.file, r.unsafe)] = groups.get((r.file, r.unsafe), 0) + 1
    w = np.array([1.0 / np.sqrt(groups[(r.file, r.unsafe)]) for r in rows], dtype=np.float64)
    unsafe = np.array([r.unsafe for r in rows])
    for side in (True, False):
        total = w[unsafe == side].sum()
        if total > 0:
            w[unsafe == side] *= (len(rows) / 2) / total
    return w


def fit(vecs: np.ndarray, rows: Sequence[TrainingRow]) -> tuple[np.ndarray, float]:
    """Logistic regression on `vecs` (n, d) with labels and weights from `rows`: (w, b)."""
    from sklearn.linear_model import LogisticRegression

    y = np.array([r.unsafe for r in rows], dtype=np.int64)
    model = LogisticRegression(C=C, solver="lbfgs", max_iter=2000, tol=1e-6)
    model.fit(vecs.astype(np.float64), y, sample_weight=sample_weights(rows))
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def _digest(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, ensure_ascii=True).encode() + b"\0")
    return "sha256:" + h.hexdigest()


def row_vectors(texts: Sequence[str], encode: Callable[[list[str]], np.ndarray], embed_key: str) -> np.ndarray:
    """Embeddings of `texts` (base space). A content-addressed store per model on disk holds every text it
    embedded before, so a changed or filtered training set embeds only its new texts."""
    key = hashlib.sha256(embed_key.encode()).hexdigest()[:24]
    path = cache_dir() / f"rows-{key}.npz"
    known: dict[str, int] = {}
    stored = np.zeros((0, 0), dtype=np.float32)
    if path.exists():
        try:
            with np.load(path) as z:
                if str(z["key"]) == embed_key:
                    stored = z["vecs"].astype(np.float32)
                    known = {h: i for i, h in enumerate(z["hashes"].tolist())}
        except Exception:  # noqa: BLE001 - a corrupt cache entry is recomputed, never trusted
            known, stored = {}, np.zeros((0, 0), dtype=np.float32)
    hashes = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()[:32] for t in texts]
    first = {h: i for i, h in reversed(list(enumerate(hashes)))}  # one index per distinct text
    missing = [i for h, i in first.items() if h not in known]
    if missing:
        order = sorted(missing, key=lambda i: len(texts[i]))  # length-sorted batches pad less
        new = np.asarray(encode([texts[i] for i in order]), dtype=np.float32)
        new_hashes = [hashes[i] for i in order]
        stored = new if stored.size == 0 else np.concatenate([stored, new])
        for h in new_hashes:
            known[h] = len(known)
        all_hashes = np.array(sorted(known, key=known.__getitem__))
        _save(path, lambda tmp: np.savez(tmp, key=np.array(embed_key), hashes=all_hashes, vecs=stored))
    if not texts:
        return np.zeros((0, stored.shape[1] if stored.ndim == 2 and stored.size else 1), dtype=np.float32)
    return stored[[known[h] for h in hashes]]


def _save(path: Path, write: Callable[[Path], None]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
        write(tmp)
        os.replace(tmp, path)
    except OSError:  # a read-only cache: training is redone next time
        pass


#: heads handed over by a compiled artifact (policyengine/runtime.py: the compiled-policy cache or a bundle), by
#: digest: (w, b, row vectors in the head's space). Used before the disk caches, so nothing is embedded or trained.
_PRELOADED: dict[str, tuple[np.ndarray, float, np.ndarray]] = {}


def preload(digest: str, w: np.ndarray, b: float, vecs: np.ndarray) -> None:
    _PRELOADED[digest] = (np.asarray(w, dtype=np.float32), float(b), np.ascontiguousarray(vecs, dtype=np.float32))


def head_digest(rows: Sequence[TrainingRow], space_key: str) -> str:
    """What a head's weights depend on: this module's configuration, the space, the rows' texts, labels and files."""
    return _digest(HEAD_VERSION, C, space_key, [(r.text, r.unsafe, r.file) for r in rows])


def build_head(name: str, rows: tuple[TrainingRow, ...], base_vecs: np.ndarray,
               to_space: Callable[[np.ndarray], np.ndarray], space_key: str) -> TrainedHead:
    """Train (or load from the cache) the head of one concept; `base_vecs` are the rows' embeddings before the
    space map, `to_space` maps them into the space the head decides in."""
    vecs = to_space(base_vecs)
    digest = head_digest(rows, space_key)
    path = cache_dir() / f"head-{digest.split(':')[-1][:32]}.npz"
    t0 = time.perf_counter()
    if path.exists():
        try:
            with np.load(path) as z:
                if str(z["digest"]) == digest:
                    return TrainedHead(name, z["w"].astype(np.float32), float(z["b"]), rows, vecs, digest,
                                       {"cached": True, "rows": len(rows)})
        except Exception:  # noqa: BLE001 - a corrupt cache entry is retrained, never trusted
            pass
    w, b = fit(vecs, rows)
    _save(path, lambda tmp: np.savez(tmp, w=w, b=np.array(b), digest=np.array(digest)))
    return TrainedHead(name, w, b, rows, vecs, digest,
                       {"cached": False, "rows": len(rows), "seconds": round(time.perf_counter() - t0, 3)})


def build_heads(concepts: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[TrainingRow, ...], tuple[str, ...]]],
                encode: Callable[[list[str]], np.ndarray], to_space: Callable[[np.ndarray], np.ndarray],
                embed_key: str, space_key: str, normalize: Callable[[str, tuple[str, ...]], str]
                ) -> dict[str, TrainedHead]:
    """Heads for every trained concept: name -> (examples, counter, training rows, normalisation pipeline).
    `embed_key` names the embedding model (row vectors are cached under it), `space_key` the space the heads decide
    in (the model plus its map, when it has one; the weights are cached under it).

    Rows are embedded as the engine embeds a message chunk (after the concept's normalisation pipeline), all
    concepts' texts in one batch per pipeline, each distinct text once."""
    sets = {k: training_set(k, ex, ctr, rows) for k, (ex, ctr, rows, _) in concepts.items()}
    heads = {}
    for k in concepts:  # handed over by a compiled artifact: no row embedded, nothing trained
        d = head_digest(sets[k], space_key)
        got = _PRELOADED.get(d)
        if got is not None and len(got[2]) == len(sets[k]):
            heads[k] = TrainedHead(k, got[0], got[1], sets[k], got[2], d, {"cached": True, "rows": len(sets[k])})
    concepts = {k: v for k, v in concepts.items() if k not in heads}
    normalized = {k: [normalize(r.text, pipeline) for r in sets[k]] for k, (_, _, _, pipeline) in concepts.items()}
    by_pipeline: dict[tuple[str, ...], list[str]] = {}
    for k, (_, _, _, pipeline) in concepts.items():
        by_pipeline.setdefault(pipeline, []).extend(normalized[k])
    vec_of: dict[tuple[tuple[str, ...], str], np.ndarray] = {}
    for pipeline, texts in by_pipeline.items():
        unique = list(dict.fromkeys(texts))
        vecs = row_vectors(unique, encode, f"{embed_key}|{','.join(pipeline)}")  # normalised texts
        vec_of.update({(pipeline, t): vecs[i] for i, t in enumerate(unique)})
    for k, (_, _, _, pipeline) in concepts.items():
        rows = sets[k]
        base = np.stack([vec_of[(pipeline, t)] for t in normalized[k]]).astype(np.float32)
        heads[k] = build_head(k, rows, base, to_space, space_key)
    return heads
