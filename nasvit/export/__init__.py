"""An export: one subnet as a standalone, verified model directory (``directory``: recalibrate, verify, write and
load it), its ONNX graph (``onnx_graph``) and the timm names that build one (``timm_registration``). Kept free of
imports so that ``import nasvit`` (which registers the timm names) stays light."""
