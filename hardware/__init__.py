"""IBM hardware path: backends by name, ISA transpilation, runtime executor, calibrated emulator, sampling.

Modules are imported on demand (``from hardware.executor import RuntimeExecutor``); nothing here creates a
backend or a service at import time.
"""
