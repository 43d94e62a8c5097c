"""Analysis of gatelab.multimodal: :mod:`.evaluation` (BLiMP scoring, caption perplexity, retrieval, the visual
gate per word class and its plot), :mod:`.wordclasses` (the word classes it groups by) and :mod:`.table`
(what the ``vl-gating`` table measures on a trained decoder, and its side-table rows)."""
