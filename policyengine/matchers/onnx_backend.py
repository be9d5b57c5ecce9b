"""The default embedding backend: the MiniLM weights through ONNX Runtime, fp32 (or int8 on request). No torch.

Exported once, offline, from the installed weights: `torch.onnx.export` of the transformer (legacy exporter,
opset 17, dynamic batch and sequence axes). That export is the only step that needs torch; it is cached,
content-addressed by the weights' sha256, in $POLICYENGINE_CACHE (default ~/.cache/policyengine)/onnx/<sha[:16]>/
(model-fp32.onnx, tokenizer.json, meta.json). At run time only onnxruntime, tokenizers and numpy are imported.

Tokenise with the model's tokenizer.json (truncate at 256 tokens, like sentence-transformers' max_seq_length),
masked mean pooling, L2 norm. fp32 ("onnx") matches sentence-transformers to cosine >= 0.9999998, so thresholds
calibrated on torch hold (docs/performance.md: 0 flips over the shared data). int8 ("onnx-int8",
`quantize_dynamic(..., QInt8, per_channel=True)`) is ~1.5x faster on single sentences but flips ~3% of decisions.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import cache as _cache
from .embedders import ModelLoadError, resolve_model_path

BACKEND = "onnx"  # fp32, the default backend
INT8 = "onnx-int8"
MAX_TOKENS = 256


def cache_dir() -> Path:
    return _cache.cache_dir()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def weights_digest(model_dir: str | Path) -> str:
    """sha256 of the model's weights file. Remembered per (real path, size, mtime) in memory and in
    $POLICYENGINE_CACHE/weights.json, so a new process does not hash 90 MB again (~0.2 s)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        f = Path(model_dir) / name
        if f.is_file():
            st = f.stat()
            key = (os.path.realpath(f), st.st_size, st.st_mtime_ns)
            if key in _DIGESTS:
                return _DIGESTS[key]
            memo_path = cache_dir() / "weights.json"
            skey = f"{key[0]}|{key[1]}|{key[2]}"
            try:
                memo = json.loads(memo_path.read_text())
            except (OSError, ValueError):
                memo = {}
            if isinstance(memo, dict) and isinstance(memo.get(skey), str) and len(memo[skey]) == 64:
                _DIGESTS[key] = memo[skey]
                return memo[skey]
            h = hashlib.sha256()
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            _DIGESTS[key] = digest = h.hexdigest()
            try:
                memo = memo if isinstance(memo, dict) else {}
                memo[skey] = digest
                memo_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(memo))
                os.replace(tmp, memo_path)
            except OSError:  # read-only cache: hash again next time
                pass
            return digest
    raise ModelLoadError(f"no model.safetensors / pytorch_model.bin in {model_dir}")


def model_dir(digest: str) -> Path:
    """The cache folder of the ONNX export of the weights with this sha256."""
    return cache_dir() / "onnx" / digest[:16]


def _meta(out: Path) -> dict[str, Any]:
    try:
        meta = json.loads((out / "meta.json").read_text())
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def export(model_id: str, out_dir: str | Path | None = None, *, quantize: bool = False) -> Path:
    """Export `model_id`'s installed weights to ONNX fp32 (and int8 with `quantize`). Returns the .onnx file.
    Idempotent: an export already in the cache for these weights is returned without importing torch."""
    src = resolve_model_path(model_id)
    digest = weights_digest(src)
    out = Path(out_dir) if out_dir else model_dir(digest)
    target = out / ("model-int8.onnx" if quantize else "model-fp32.onnx")
    if target.is_file() and (out / "tokenizer.json").is_file() and _meta(out).get("weights_sha256") == digest:
        return target
    out.mkdir(parents=True, exist_ok=True)
    try:
        import torch
        from transformers import AutoModel
    except ImportError as e:  # pragma: no cover
        raise ModelLoadError(f"the ONNX model of {model_id!r} is not in the cache ({out}) and exporting it needs torch "
                             f"and transformers ({e}); export it once on a machine with torch, or load a bundle "
                             "that carries it") from e
    from .embedders import offline_quiet

    offline_quiet()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    bert = AutoModel.from_pretrained(src)
    bert.eval()

    class _Hidden(torch.nn.Module):  # keyword arguments: transformers' forward() signature changes between versions
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = _Hidden().eval()
    fp32 = out / "model-fp32.onnx"
    if not fp32.is_file():
        import warnings

        ids = torch.ones((2, 8), dtype=torch.long)
        tmp = fp32.with_suffix(f".{os.getpid()}.tmp")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation notes of the legacy exporter
            torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(tmp),
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={k: {0: "batch", 1: "seq"} for k in
                                            ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")})
        os.replace(tmp, fp32)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = target.with_suffix(".tmp.onnx")
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, target)
    (out / "tokenizer.json").write_bytes((Path(src) / "tokenizer.json").read_bytes())
    meta = {**_meta(out), "model_id": model_id, "weights_sha256": digest, "max_tokens": MAX_TOKENS}
    tmp = out / f"meta.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, out / "meta.json")
    return target


class OnnxEmbedder:
    """Embedder protocol on ONNX Runtime (CPU). `threads` sets intra-op threads; spinning is off (shared cores)."""

    def __init__(self, model_id: str, threads: int = 1, batch_size: int = 32, model_file: str | Path | None = None,
                 quantized: bool = False):
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ModelLoadError("the onnx backend needs onnxruntime and tokenizers "
                                 "(pip install 'policyengine[onnx]')") from e
        self.model_id = model_id
        self.batch_size = batch_size
        self.backend = INT8 if quantized else BACKEND
        path = Path(model_file) if model_file else export(model_id, quantize=quantized)
        meta = _meta(path.parent)
        if "weights_sha256" not in meta:
            raise ModelLoadError(f"{path.parent}: not an exported model (no meta.json with the weights' sha256)")
        self.weights_sha256 = meta["weights_sha256"]
        #: the embedding space, for caches of vectors: backend and the weights they come from
        self.space_id = f"{self.backend}:{self.weights_sha256}"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - a truncated or corrupt file: one clear error
            raise ModelLoadError(f"cannot load the ONNX model {path}: {e} (delete {path.parent} to export it again)") \
                from e
        self._inputs = {i.name for i in self._session.get_inputs()}
        tok = Tokenizer.from_file(str(path.parent / "tokenizer.json"))
        tok.enable_truncation(MAX_TOKENS)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tok = tok
        self._lock = threading.Lock()  # the tokenizer's padding/truncation state is shared; sessions are re-entrant

    @property
    def dimension(self) -> int:
        return 384

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = []
        for i in range(0, len(texts), self.batch_size):
            with self._lock:
                encs = self._tok.encode_batch(texts[i:i + self.batch_size])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feed)[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out.append(pooled.astype(np.float32))
        return np.ascontiguousarray(np.concatenate(out))


def load_onnx_embedder(model_id: str, threads: int = 1, quantized: bool = False) -> Any:
    """Once per process per (base model, threads); "<base>+contrastive" ids share the base model's session."""
    from .embedders import shared_embedder

    return shared_embedder(INT8 if quantized else BACKEND, model_id, threads,
                           lambda base, t: OnnxEmbedder(base, threads=t, quantized=quantized))
