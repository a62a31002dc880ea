"""The HDMI screen: call layouts (``layout``) and the compositor that paints them."""

from appliance.display.compositor import Compositor
from appliance.display.layout import Layout, Tile, compute_layout
from appliance.display.scene import Control, HomeInfo, Scene, Screen

__all__ = [
    "Compositor",
    "Control",
    "HomeInfo",
    "Layout",
    "Scene",
    "Screen",
    "Tile",
    "compute_layout",
]
