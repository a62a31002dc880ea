from hal.buttons.base import ButtonName, Buttons, Press

__all__ = ["ButtonName", "Buttons", "Press"]
