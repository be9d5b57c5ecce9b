"""Optional embedding backend: the same MiniLM weights through ONNX Runtime, int8 dynamic quantisation.

Exported offline from the installed weights (no download): `torch.onnx.export` of the transformer (legacy exporter,
opset 17, dynamic batch and sequence axes), then `quantize_dynamic(..., QInt8, per_channel=True)` (the default
per-tensor quantisation agrees much worse with torch: see /work/shared/STACK.md). At run time only onnxruntime,
tokenizers and numpy are needed: torch is imported by the export alone.

Tokenise with the model's tokenizer.json (truncate at 256 tokens, like sentence-transformers' max_seq_length),
masked mean pooling, L2 norm. Embeddings differ slightly from torch's (cosine ~0.99): thresholds calibrated on
torch may flip borderline decisions; docs/performance.md reports how many on the shared data.

The exported model is cached in $POLICYENGINE_CACHE (default ~/.cache/policyengine)/onnx/<weights sha256[:16]>/.
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

BACKEND = "onnx-int8"
MAX_TOKENS = 256


def cache_dir() -> Path:
    return _cache.cache_dir()


def weights_digest(model_dir: str | Path) -> str:
    h = hashlib.sha256()
    for name in ("model.safetensors", "pytorch_model.bin"):
        f = Path(model_dir) / name
        if f.is_file():
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()
    raise ModelLoadError(f"no model.safetensors / pytorch_model.bin in {model_dir}")


def export(model_id: str, out_dir: str | Path | None = None, *, quantize: bool = True) -> Path:
    """Export `model_id`'s installed weights to ONNX (and int8). Returns the .onnx file. Idempotent."""
    src = resolve_model_path(model_id)
    digest = weights_digest(src)
    out = Path(out_dir) if out_dir else cache_dir() / "onnx" / digest[:16]
    target = out / ("model-int8.onnx" if quantize else "model-fp32.onnx")
    meta_path = out / "meta.json"
    if target.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()).get("weights_sha256") == digest:
        return target
    out.mkdir(parents=True, exist_ok=True)
    try:
        import torch
        from transformers import AutoModel
    except ImportError as e:  # pragma: no cover
        raise ModelLoadError(f"exporting to ONNX needs torch and transformers: {e}") from e
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
        ids = torch.ones((2, 8), dtype=torch.long)
        tmp = fp32.with_suffix(".tmp")
        with torch.no_grad():
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
    meta_path.write_text(json.dumps({"model_id": model_id, "weights_sha256": digest, "backend": BACKEND,
                                     "max_tokens": MAX_TOKENS}))
    return target


class OnnxEmbedder:
    """Embedder protocol on ONNX Runtime (CPU). `threads` sets intra-op threads; spinning is off (shared cores)."""

    backend = BACKEND

    def __init__(self, model_id: str, threads: int = 1, batch_size: int = 32, model_file: str | Path | None = None):
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ModelLoadError("the onnx backend needs onnxruntime and tokenizers "
                                 "(pip install 'policyengine[onnx]')") from e
        self.model_id = model_id
        self.batch_size = batch_size
        path = Path(model_file) if model_file else export(model_id)
        meta = json.loads((path.parent / "meta.json").read_text())
        self.weights_sha256 = meta["weights_sha256"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
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


def load_onnx_embedder(model_id: str, threads: int = 1) -> Any:
    """Once per process per (base model, threads); "<base>+contrastive" ids share the base model's session."""
    from .embedders import shared_embedder

    return shared_embedder("onnx", model_id, threads, lambda base, t: OnnxEmbedder(base, threads=t))
