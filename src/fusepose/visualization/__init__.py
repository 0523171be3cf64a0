"""Drawing: skeletons, heatmap and tag-map overlays, attention maps (OpenCV, BGR uint8)."""

from fusepose.visualization.heatmaps import heatmap_grid, overlay, tag_grid, tag_map_image
from fusepose.visualization.skeleton import draw_poses, limb_colors, track_color

__all__ = ["draw_poses", "heatmap_grid", "limb_colors", "overlay", "tag_grid", "tag_map_image",
           "track_color"]
