"""Codecs: keypoints -> training targets, network outputs -> poses (numpy; torch tensors in)."""

from fusepose.codecs.associative_embedding import AssociativeEmbeddingCodec
from fusepose.codecs.heatmap import TopDownHeatmapCodec

__all__ = ["AssociativeEmbeddingCodec", "TopDownHeatmapCodec"]
