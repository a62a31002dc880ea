"""Hardware abstraction: one package per device kind, each a Protocol, a real driver, a fake."""
