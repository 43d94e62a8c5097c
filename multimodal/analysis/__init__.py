"""Analysis of gatelab.multimodal: :mod:`.evaluation` (BLiMP scoring, caption perplexity, retrieval, the visual
gate per word class and its plot) and :mod:`.wordclasses` (the word classes it groups by)."""
