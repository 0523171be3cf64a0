"""Drawing: skeletons, heatmap and tag-map overlays, attention maps (OpenCV, BGR uint8); the
one writer of results (JSON, drawn images, videos), which also lets results draw themselves."""

from fusepose.visualization.heatmaps import heatmap_grid, overlay, tag_grid, tag_map_image
from fusepose.visualization.skeleton import draw_poses, limb_colors, track_color
from fusepose.visualization.writer import (
    ResultWriter,
    coco_records,
    people_json,
    side_by_side,
    write_image,
)

__all__ = ["ResultWriter", "coco_records", "draw_poses", "heatmap_grid", "limb_colors",
           "overlay", "people_json", "side_by_side", "tag_grid", "tag_map_image", "track_color",
           "write_image"]  # fmt: skip
