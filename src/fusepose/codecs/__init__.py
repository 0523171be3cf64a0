"""Codecs: keypoints -> training targets, network outputs -> poses (numpy; torch tensors in).

Every codec follows :class:`~fusepose.codecs.base.KeypointCodec` (``encode -> dict``,
``decode -> (keypoints, scores)``, ``ideal_outputs``); ``fusepose.codecs.pipelines`` builds them
from a description (``build_codec``) and holds the family pipelines.
"""

from fusepose.codecs.associative_embedding import AssociativeEmbeddingCodec
from fusepose.codecs.base import KeypointCodec
from fusepose.codecs.heatmap import TopDownHeatmapCodec

__all__ = ["AssociativeEmbeddingCodec", "KeypointCodec", "TopDownHeatmapCodec"]
