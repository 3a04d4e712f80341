"""Synthetic data: the knee phantom (`phantom`, built from `shapes`) and the writers that store
phantom volumes as a scanner would (`scanner_files`: DICOM series and studies, NIfTI).

numpy, scipy, pydicom and nibabel only, no torch: `mrnet-train synth`, the web demo's example exam,
the benchmarks and the tests all use it, and the app must not import the trainer.
"""
