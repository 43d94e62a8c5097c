"""gatelab.core: gate primitives, kernels and the shared experiment harness.

Names are exported lazily (PEP 562) so ``import gatelab.core`` stays cheap; every public name
below is importable as ``from gatelab.core import NAME``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .layers.lazy import lazy_exports

# public name -> submodule of gatelab.core defining it
_EXPORTS: dict[str, str] = {
    # infrastructure
    "get_act": "layers.activations",
    "create_act": "layers.activations",
    "capture_gates": "layers.capture",
    "record_gate": "layers.capture",
    "is_capturing": "layers.capture",
    "GateCapture": "layers.capture",
    "ConfigError": "config",
    "register_model": "registry",
    "create_model": "registry",
    "list_models": "registry",
    "model_info": "registry",
    # 1. GLU family
    "glu": "glu_family",
    "glu_pair": "glu_family",
    "GluMlp": "glu_family",
    "GLU_KINDS": "glu_family",
    # 2. TFT gates
    "GatedLinearUnit": "grn",
    "GatedResidualNetwork": "grn",
    "GateAddNorm": "grn",
    "VariableSelectionNetwork": "grn",
    # 3. FinalMLP feature gating
    "FeatureGate": "feature_gate",
    # 4. GDCN gated cross
    "GatedCrossLayer": "gated_cross",
    "GatedCrossNetwork": "gated_cross",
    # 5. Attention U-Net grid gate
    "AttentionGate": "attention_gate",
    "SameGridAttentionGate": "attention_gate",
    # 6. gMLP / MAXIM
    "SpatialGatingUnit": "spatial_gating",
    "MultiAxisGatedMLP": "spatial_gating",
    "CrossGatingBlock": "spatial_gating",
    # 7. channel / spatial gates
    "SqueezeExcite": "channel_gates",
    "CBAM": "channel_gates",
    # 8. gated attention
    "OutputGatedAttention": "output_gated_attention",
    # 9. gated linear attention
    "GatedLinearAttention": "gla",
    "gla_recurrent": "kernels.gla",
    "gla_chunk": "kernels.gla",
    # 10. mixture of experts
    "TopKRouter": "moe",
    "SparseMoE": "moe",
    "RouterOutput": "moe",
    "MoEOutput": "moe",
    # 11. token-wise fusion
    "TokenwiseGate": "tokenwise",
    # 12. residual gates
    "HighwayGate": "highway",
    "ResidualGate": "highway",
    # 13. gated convolution
    "GatedConv1d": "gated_conv",
    # 14. bilinear fusion
    "BilinearFusion": "bilinear",
    # 15. gated attention unit
    "GatedAttentionUnit": "gau",
    # 16. gated message passing on graphs (torch-geometric)
    "ResidualGatedGraphConv": "graph_gates",
    "GatedGCNConv": "graph_gates",
    "GatedGraphPropagation": "graph_gates",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .attention_gate import AttentionGate, SameGridAttentionGate
    from .bilinear import BilinearFusion
    from .channel_gates import CBAM, SqueezeExcite
    from .config import ConfigError
    from .feature_gate import FeatureGate
    from .gated_conv import GatedConv1d
    from .gated_cross import GatedCrossLayer, GatedCrossNetwork
    from .gau import GatedAttentionUnit
    from .gla import GatedLinearAttention
    from .glu_family import GLU_KINDS, GluMlp, glu, glu_pair
    from .graph_gates import GatedGCNConv, GatedGraphPropagation, ResidualGatedGraphConv
    from .grn import GateAddNorm, GatedLinearUnit, GatedResidualNetwork, VariableSelectionNetwork
    from .highway import HighwayGate, ResidualGate
    from .kernels.gla import gla_chunk, gla_recurrent
    from .layers.activations import create_act, get_act
    from .layers.capture import GateCapture, capture_gates, is_capturing, record_gate
    from .moe import MoEOutput, RouterOutput, SparseMoE, TopKRouter
    from .output_gated_attention import OutputGatedAttention
    from .registry import create_model, list_models, model_info, register_model
    from .spatial_gating import CrossGatingBlock, MultiAxisGatedMLP, SpatialGatingUnit
    from .tokenwise import TokenwiseGate
