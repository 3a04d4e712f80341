"""mrnet.infer: read knee exams and run the nine MRNet models with ONNX Runtime (no torch)."""

from .reading import Exam, read_exam
from .registry import PLANES, TASKS

__all__ = ["PLANES", "TASKS", "Exam", "read_exam"]
