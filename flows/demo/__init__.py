"""`wap demo`: titanic-shaped data generated in code (`data.py`), gated once clean and once corrupted (`run.py`)."""

from flows.demo.run import DEMO_DEFECTS, run_demo

__all__ = ["DEMO_DEFECTS", "run_demo"]
