"""`mrnet-node`: a DICOM node a PACS sends knee studies to, and that sends back a Structured
Report (`mrnet.infer.dicom_results`) per study. Depends on `mrnet.infer` only, like the web demo.

    scp.py       the Storage SCP (pynetdicom): C-ECHO, MR and Enhanced MR Image Storage, --allow-ae
    studies.py   received files grouped by study in the work folder; a study is complete when stable
    pipeline.py  one complete study: read_exam, the Predictor, the SR into the outbox
    outbox.py    results waiting to be sent; C-STORE to the destination with bounded retries
    service.py   the threads that tie these together, started and stopped as one
    cli.py       the command line
"""
