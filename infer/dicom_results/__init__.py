"""Results as DICOM objects a PACS files next to the images: a Structured Report (TID 1500), and a
Secondary Capture of the class activation maps for viewers that cannot render SR.

`source_study` reads where the exam came from (study, series, images; the patient and study
identification only here, only to copy it into the report); `structured_report` builds the SR;
`secondary_captures` the overlay images. highdicom is imported only by these modules.
"""
