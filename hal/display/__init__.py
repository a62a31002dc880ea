from hal.display.base import Display, DisplayError

__all__ = ["Display", "DisplayError"]
