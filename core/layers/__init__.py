"""Public helpers shared by the gates, the harness and the domains.

:mod:`.nd` (layer factories by ``spatial_dims``), :mod:`.activations` (activations by name),
:mod:`.capture` (gate capture: ``capture_gates`` / ``record_gate``), :mod:`.dropout` (the one cheap CPU
dropout: ``dropout_mask``, ``fast_dropout``, ``FastDropout``, ``relu_dropout``), :mod:`.checks` (argument
validation shared by the gate constructors), :mod:`.lazy` (PEP 562 lazy package exports, used by
every package ``__init__`` that keeps ``import`` cheap). Importing this package imports nothing
heavy; import the submodule you need.
"""
