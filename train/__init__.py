"""mrnet.train: mrnet-baseline training, FGSM retraining, evaluation, reports and export.

    spec.py      RunSpec and ModelJob: what defines a run and each of its models
    pipeline.py  the library entries: run_baseline, run_advtrain, run_sweep, run_pipeline, run_model
    loop.py      one model's training, with exact resume      rundir.py  the run folder's format
    export.py    a run -> a verified bundle (quantize.py: its int8 twins; onnx_file.py: metadata)
    cli.py       `mrnet-train`: options in, library calls, progress and tables out

Importing this package does not import torch; the modules that train do.
"""
