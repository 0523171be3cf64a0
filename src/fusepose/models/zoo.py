"""Registered models. Each entry builds a network from explicit arguments.

Bottom-up entries return ``(out_quarter, out_half)``: ``(B, 2K, H/4, W/4)`` (K heatmaps then K
associative-embedding tag maps) and ``(B, K, H/2, W/2)`` heatmaps.
Top-down entries return a tuple of heatmaps ``(B, K, H/4, W/4)``, intermediate first, final last.
"""

from __future__ import annotations

from fusepose.registry import register_model

# ---------------------------------------------------------------- bottom-up (HigherHRNet family)

# ---------------------------------------------------------------- top-down (SFM family)
