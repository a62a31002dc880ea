"""Rendering sprite descriptions into RGBA pictures with Pillow, once per (description, size).

Shapes are drawn supersampled and scaled down so their edges are smooth; text is drawn at
the final size (FreeType anti-aliases it). A rendered sprite is cropped to its visible part
and keeps its colour premultiplied by its alpha, so blending it is two multiplies and an add.
"""

from __future__ import annotations

import colorsys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from appliance.calls.settings import AvatarMode
from appliance.display import icons, sprites, theme
from appliance.display.geometry import Colour, Rect
from appliance.display.scene import Control
from hal.kit import uid_fraction

Rgb = npt.NDArray[np.uint8]
ImageLookup = Callable[[str], "Image.Image | None"]

_DARK: Colour = (24, 24, 28)


@dataclass(frozen=True)
class Sprite:
    """A rendered picture: ``offset`` (x, y) of its visible part inside the item's rectangle,
    ``rgb`` (h, w, 3) and, unless it is fully opaque, ``premultiplied`` colour and
    ``inverse_alpha`` (255 - alpha) as uint16 for blending."""

    offset: tuple[int, int]
    rgb: Rgb
    premultiplied: npt.NDArray[np.uint16] | None
    inverse_alpha: npt.NDArray[np.uint16] | None

    @property
    def opaque(self) -> bool:
        return self.premultiplied is None

    @property
    def nbytes(self) -> int:
        extra = 0 if self.premultiplied is None else self.premultiplied.nbytes * 4 // 3
        return self.rgb.nbytes + extra

    def bounds(self, rect: Rect) -> Rect:
        height, width = self.rgb.shape[:2]
        return Rect(rect.x + self.offset[0], rect.y + self.offset[1], width, height)

    def draw(self, canvas: Rgb, rect: Rect, clip: Rect) -> None:
        """Paint onto ``canvas`` at ``rect``, only inside ``clip``."""
        bounds = self.bounds(rect)
        area = bounds.intersection(clip)
        if area.empty:
            return
        src = (
            slice(area.y - bounds.y, area.bottom - bounds.y),
            slice(area.x - bounds.x, area.right - bounds.x),
        )
        dst = canvas[area.slices()]
        if self.premultiplied is None or self.inverse_alpha is None:
            dst[...] = self.rgb[src]
            return
        # Everything stays within uint16: 255 * (255 - a) + 255 * a + 128 + 254 < 65536.
        mixed = dst * self.inverse_alpha[src]
        mixed += self.premultiplied[src]
        mixed += 128
        mixed += mixed >> 8  # (x + 128 + ((x + 128) >> 8)) >> 8 is x / 255, rounded
        mixed >>= 8
        np.copyto(dst, mixed, casting="unsafe")


def sprite_from_rgba(rgba: npt.NDArray[np.uint8]) -> Sprite:
    alpha = rgba[..., 3]
    if bool((alpha == 255).all()):
        return Sprite((0, 0), np.ascontiguousarray(rgba[..., :3]), None, None)
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    if len(rows) == 0:
        empty = np.zeros((0, 0, 3), np.uint8)
        return Sprite((0, 0), empty, np.zeros((0, 0, 3), np.uint16), np.zeros((0, 0, 1), np.uint16))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    part = rgba[top:bottom, left:right]
    a = part[..., 3:4].astype(np.uint16)
    rgb = np.ascontiguousarray(part[..., :3])
    return Sprite(
        (int(left), int(top)), rgb, rgb.astype(np.uint16) * a, (255 - a).astype(np.uint16)
    )


class SpriteCache:
    """Rendered sprites by (description, width, height), least recently used dropped first
    once they take more than ``max_bytes``. Thread-safe: the painter renders in its thread."""

    def __init__(self, images: ImageLookup, max_bytes: int = 96 << 20) -> None:
        self._images = images
        self._max_bytes = max_bytes
        self._bytes = 0
        self._sprites: OrderedDict[tuple[sprites.SpriteSpec, int, int], Sprite] = OrderedDict()
        self._lock = threading.Lock()
        self.renders = 0

    def get(self, spec: sprites.SpriteSpec, width: int, height: int) -> Sprite:
        key = (spec, width, height)
        with self._lock:
            found = self._sprites.get(key)
            if found is not None:
                self._sprites.move_to_end(key)
                return found
        sprite = sprite_from_rgba(render(spec, width, height, self._images))
        with self._lock:
            self.renders += 1
            self._sprites[key] = sprite
            self._bytes += sprite.nbytes
            while self._bytes > self._max_bytes and len(self._sprites) > 1:
                _, dropped = self._sprites.popitem(last=False)
                self._bytes -= dropped.nbytes
        return sprite


# --- rendering ----------------------------------------------------------------------------


def render(
    spec: sprites.SpriteSpec, width: int, height: int, images: ImageLookup
) -> npt.NDArray[np.uint8]:
    """The sprite as an (height, width, 4) RGBA array."""
    if width <= 0 or height <= 0:
        raise ValueError(f"sprite size must be positive, got {width}x{height}")
    if isinstance(spec, sprites.Text):
        image = _text(spec, width, height)
    elif isinstance(spec, sprites.Label):
        image = _label(spec, width, height)
    elif isinstance(spec, sprites.Avatar):
        image = _avatar(spec, width, height, images)
    elif isinstance(spec, sprites.Button):
        image = _button(spec, width, height)
    elif isinstance(spec, sprites.RecordingBadge):
        image = _recording_badge(width, height)
    elif isinstance(spec, sprites.KeyHint):
        image = _key_hint(spec, width, height)
    else:
        image = _cursor(width, height)
    return np.asarray(image.convert("RGBA"), dtype=np.uint8)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, size))


def _text_width(text: str, size: int) -> float:
    return float(font(size).getlength(text))


def fit_text(text: str, size: int, max_width: float) -> str:
    """``text``, cut with an ellipsis to fit ``max_width`` pixels."""
    if _text_width(text, size) <= max_width:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if _text_width(text[:middle].rstrip() + "…", size) <= max_width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…" if low else ""


def _supersample(width: int, height: int) -> int:
    largest = max(width, height)
    return 4 if largest <= 256 else 2 if largest <= 768 else 1


def _smooth(
    width: int, height: int, draw: Callable[[ImageDraw.ImageDraw, int], None]
) -> Image.Image:
    """An RGBA picture of shapes drawn by ``draw(canvas, scale)`` at ``scale`` times the size,
    then scaled down (which anti-aliases the edges)."""
    scale = _supersample(width, height)
    big = Image.new("RGBA", (width * scale, height * scale), (0, 0, 0, 0))
    draw(ImageDraw.Draw(big), scale)
    return big if scale == 1 else big.resize((width, height), Image.Resampling.BOX)


def _rgba(colour: Colour, alpha: int = 255) -> tuple[int, int, int, int]:
    return (*colour, alpha)


def _text(spec: sprites.Text, width: int, height: int) -> Image.Image:
    size = min(spec.size, height)
    pad = round(size * 0.6) if spec.pill is not None else 0
    dot = round(size * 0.55) if spec.dot is not None else 0
    dot_gap = round(size * 0.4) if dot else 0
    text = fit_text(spec.text, size, width - 2 * pad - dot - dot_gap)
    content = dot + dot_gap + _text_width(text, size)
    box_w = min(width, round(content + 2 * pad))
    left = 0 if spec.align == "left" else (width - box_w) // 2
    pill = spec.pill

    def shapes(draw: ImageDraw.ImageDraw, s: int) -> None:
        if pill is not None:
            draw.rounded_rectangle(
                (left * s, 0, (left + box_w) * s - 1, height * s - 1),
                radius=height * s // 2,
                fill=_rgba(pill, 230),
            )
        if spec.dot is not None:
            x, y = (left + pad) * s, (height - dot) * s // 2
            draw.ellipse((x, y, x + dot * s, y + dot * s), fill=_rgba(spec.dot))

    image = _smooth(width, height, shapes)
    ImageDraw.Draw(image).text(
        (left + pad + dot + dot_gap, height / 2),
        text,
        font=font(size),
        fill=_rgba(spec.colour),
        anchor="lm",
    )
    return image


def _label(spec: sprites.Label, width: int, height: int) -> Image.Image:
    size = max(6, round(height * 0.58))
    pad = round(height * 0.3)
    icon = round(height * 0.78)
    badges = [
        kind for kind, on in (("mic-off", spec.muted), ("camera-off", spec.video_paused)) if on
    ]
    used = pad + len(badges) * (icon + pad // 2)
    text = fit_text(spec.name, size, width - used - pad)
    box_w = min(width, round(used + _text_width(text, size) + pad))

    def shapes(draw: ImageDraw.ImageDraw, s: int) -> None:
        draw.rounded_rectangle(
            (0, 0, box_w * s - 1, height * s - 1),
            radius=height * s // 3,
            fill=_rgba(theme.LABEL_BG, 190),
        )
        x = pad
        top = (height - icon) // 2
        for kind in badges:
            box = (x * s, top * s, (x + icon) * s, (top + icon) * s)
            draw.ellipse(box, fill=_rgba(theme.RED))
            icons.draw(draw, kind, _inset(box, icon * s * 0.16), _rgba(theme.WHITE))
            x += icon + pad // 2

    image = _smooth(width, height, shapes)
    ImageDraw.Draw(image).text(
        (used, height / 2), text, font=font(size), fill=_rgba(theme.WHITE), anchor="lm"
    )
    return image


def _inset(box: tuple[float, float, float, float], by: float) -> tuple[float, float, float, float]:
    return (box[0] + by, box[1] + by, box[2] - by, box[3] - by)


def avatar_colour(uid: str) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(
        uid_fraction(uid, "avatar"), theme.AVATAR_SATURATION, theme.AVATAR_VALUE
    )
    return round(r * 255), round(g * 255), round(b * 255)


def initials(name: str) -> str:
    words = [w for w in name.replace("-", " ").replace("_", " ").split() if w[0].isalnum()]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def _cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled to cover width x height, the overflow cut evenly on both sides."""
    scale = max(width / image.width, height / image.height)
    w, h = max(width, round(image.width * scale)), max(height, round(image.height * scale))
    scaled = image.convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
    left, top = (w - width) // 2, (h - height) // 2
    return scaled.crop((left, top, left + width, top + height))


def _avatar(spec: sprites.Avatar, width: int, height: int, images: ImageLookup) -> Image.Image:
    colour = avatar_colour(spec.uid)
    picture = images(spec.image) if spec.image else None
    if spec.shape is AvatarMode.fullscreen:
        image = Image.new("RGBA", (width, height), _rgba(colour))
        if picture is not None:
            image.paste(_cover(picture, width, height), (0, 0))
            return image
    else:
        circle = spec.shape is AvatarMode.circle

        def shape(draw: ImageDraw.ImageDraw, s: int) -> None:
            box = (0, 0, width * s - 1, height * s - 1)
            if circle:
                draw.ellipse(box, fill=_rgba(colour))
            else:
                draw.rectangle(box, fill=_rgba(colour))

        image = _smooth(width, height, shape)
        if picture is not None:
            mask = image.getchannel("A")
            image.paste(_cover(picture, width, height), (0, 0), mask)
            return image
    size = round(min(width, height) * (0.22 if spec.shape is AvatarMode.fullscreen else 0.4))
    ImageDraw.Draw(image).text(
        (width / 2, height / 2),
        initials(spec.name),
        font=font(size),
        fill=_rgba(theme.WHITE),
        anchor="mm",
    )
    return image


_ROUTE_ICONS = {
    "SPEAKER": "speaker",
    "EARPIECE": "earpiece",
    "BLUETOOTH": "bluetooth",
    "HEADPHONES": "headphones",
}


def _button_icon(spec: sprites.Button) -> str:
    control = spec.control
    if control is Control.MUTE:
        return "mic-off" if spec.active else "mic"
    if control is Control.PAUSE_VIDEO:
        return "camera-off" if spec.active else "camera"
    if control is Control.SWITCH_CAMERA:
        return "switch-camera"
    if control is Control.AUDIO_MODE:
        return _ROUTE_ICONS.get(spec.detail, "speaker")
    if control is Control.SWITCH_TO_VIDEO:
        return "video-call"
    if control is Control.RECORDING:
        return "stop" if spec.active else "record"
    return "end"


def _button(spec: sprites.Button, width: int, height: int) -> Image.Image:
    caption_size = max(6, round(height * 0.17))
    diameter = min(width, round(height - caption_size * 1.5))
    left = (width - diameter) // 2
    if spec.control is Control.END:
        fill, ink = theme.RED, theme.WHITE
    elif spec.active:
        fill, ink = theme.BUTTON_ACTIVE, _DARK
    else:
        fill, ink = theme.BUTTON, theme.WHITE
    alpha = 255 if spec.enabled else 90
    icon = _button_icon(spec)
    red_icon = spec.active and spec.control in (Control.MUTE, Control.RECORDING)

    def shapes(draw: ImageDraw.ImageDraw, s: int) -> None:
        box = (left * s, 0, (left + diameter) * s - 1, diameter * s - 1)
        draw.ellipse(box, fill=_rgba(fill, alpha))
        colour = theme.RED if red_icon else ink
        icons.draw(draw, icon, _inset(box, diameter * s * 0.24), _rgba(colour, alpha))

    image = _smooth(width, height, shapes)
    caption = fit_text(spec.caption, caption_size, width)
    ImageDraw.Draw(image).text(
        (width / 2, height - caption_size * 0.7),
        caption,
        font=font(caption_size),
        fill=_rgba(theme.WHITE, 255 if spec.enabled else 110),
        anchor="mm",
    )
    return image


def _recording_badge(width: int, height: int) -> Image.Image:
    size = round(height * 0.5)
    dot = round(height * 0.4)

    def shapes(draw: ImageDraw.ImageDraw, s: int) -> None:
        draw.rounded_rectangle(
            (0, 0, width * s - 1, height * s - 1),
            radius=height * s // 2,
            fill=_rgba(theme.LABEL_BG, 210),
        )
        x, y = round(height * 0.35) * s, (height - dot) * s // 2
        draw.ellipse((x, y, x + dot * s, y + dot * s), fill=_rgba(theme.RED))

    image = _smooth(width, height, shapes)
    ImageDraw.Draw(image).text(
        (round(height * 0.35) + dot + round(height * 0.25), height / 2),
        "REC",
        font=font(size),
        fill=_rgba(theme.WHITE),
        anchor="lm",
    )
    return image


def _key_hint(spec: sprites.KeyHint, width: int, height: int) -> Image.Image:
    key_w = round(width * 0.42)
    size = round(height * 0.36)

    def shapes(draw: ImageDraw.ImageDraw, s: int) -> None:
        radius = height * s // 4
        draw.rounded_rectangle(
            (0, 0, width * s - 1, height * s - 1), radius=radius, fill=_rgba(theme.LABEL_BG, 220)
        )
        draw.rounded_rectangle(
            (0, 0, key_w * s - 1, height * s - 1), radius=radius, fill=_rgba(spec.colour)
        )

    image = _smooth(width, height, shapes)
    draw = ImageDraw.Draw(image)
    draw.text(
        (key_w / 2, height / 2),
        fit_text(spec.key, size, key_w),
        font=font(size),
        fill=_rgba(_DARK),
        anchor="mm",
    )
    action = fit_text(spec.action, size, width - key_w - height * 0.3)
    draw.text(
        ((key_w + width) / 2, height / 2),
        action,
        font=font(size),
        fill=_rgba(theme.WHITE),
        anchor="mm",
    )
    return image


def _cursor(width: int, height: int) -> Image.Image:
    def shapes(draw: ImageDraw.ImageDraw, s: int) -> None:
        w, h = width * s, height * s
        arrow = [
            (0, 0),
            (0, h * 0.85),
            (w * 0.24, h * 0.64),
            (w * 0.42, h),
            (w * 0.56, h * 0.94),
            (w * 0.38, h * 0.58),
            (w * 0.66, h * 0.58),
        ]
        draw.polygon(arrow, fill=(255, 255, 255, 255), outline=(0, 0, 0, 255), width=max(1, s * 2))

    return _smooth(width, height, shapes)
