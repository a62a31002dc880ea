from hal.input.base import InputError, Pointer, PointerAction, PointerEvent

__all__ = ["InputError", "Pointer", "PointerAction", "PointerEvent"]
