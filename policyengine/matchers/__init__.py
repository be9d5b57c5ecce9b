"""Matchers: regex/word lists (in compiler.CompiledPattern), embedders and the similarity index.
Heavy libraries (torch, sentence-transformers, faiss) are imported lazily inside these adapters."""
