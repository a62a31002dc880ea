from hal.buttons.base import ButtonName, Buttons, LedName, LedState, Press

__all__ = ["ButtonName", "Buttons", "LedName", "LedState", "Press"]
