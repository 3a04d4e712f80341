"""The class activation maps as DICOM Secondary Capture images, for viewers that cannot render SR:
per plane and task, the slice with the strongest evidence with the map over it and a caption burned
in (finding, probability, decision, slice, "not for clinical use"), in a series of its own under
the source study.

The slice is one of the MRNet volume the models saw (resampled to 256 x 256), so the image carries
the patient orientation of its rows and columns but no pixel spacing.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.uid import generate_uid

from ..predictor import Prediction
from ..reading import Exam
from ..overlay import render_slice, strongest_slice
from ..registry import PLANE_AXES, TASK_TITLES, TASKS
from .sources import SourceStudy
from .structured_report import MANUFACTURER

SC_SERIES_NUMBER = 9902
SC_SERIES_DESCRIPTION = "MRNet CAM RESEARCH - not for clinical use"
CAPTION_ROWS = 40


def patient_orientation(plane: str) -> tuple[str, str]:
    """Where the image's rows and columns point (PS3.3 C.7.6.1.1.1), from the registry's axes."""
    def letter(vector) -> str:
        axis = int(np.argmax(np.abs(vector)))
        return ("LR", "PA", "HF")[axis][0 if vector[axis] > 0 else 1]

    axes = PLANE_AXES[plane]
    return letter(axes.col), letter(axes.row)


def _captioned(rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """The image with a black strip below it holding `lines` in white."""
    canvas = Image.new("RGB", (rgb.shape[1], rgb.shape[0] + CAPTION_ROWS))
    canvas.paste(Image.fromarray(rgb), (0, 0))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    for k, line in enumerate(lines):
        draw.text((3, rgb.shape[0] + 1 + 13 * k), line, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def secondary_captures(prediction: Prediction, exam: Exam, source: SourceStudy) -> list[hd.sc.SCImage]:
    """One RGB Secondary Capture per plane and task, in one new series under the source study."""
    series_uid, images = generate_uid(), []
    demo = " (demo weights)" if prediction.synthetic_weights else ""
    for plane in prediction.planes:
        volume = exam.volumes[plane]
        for task in TASKS:
            cam = prediction.cams[plane][task]
            index = strongest_slice(cam)
            result = prediction.tasks[task]
            plane_p = prediction.plane_probabilities[plane][task]
            caption = [f"{TASK_TITLES[task]} {result.probability:.3f} "
                       f"({'positive' if result.decision else 'negative'} at {result.threshold:.3f})",
                       f"{plane} slice {index + 1}/{volume.shape[0]}; {plane} p {plane_p:.2f}",
                       f"NOT FOR CLINICAL USE{demo}"]
            image = hd.sc.SCImage.from_ref_dataset(
                source.header, _captioned(render_slice(volume, cam, index), caption),
                photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
                series_instance_uid=series_uid, series_number=SC_SERIES_NUMBER, sop_instance_uid=generate_uid(),
                instance_number=len(images) + 1, manufacturer=MANUFACTURER,
                patient_orientation=patient_orientation(plane), series_description=SC_SERIES_DESCRIPTION,
                content_qualification=hd.ContentQualificationValues.RESEARCH,
                transfer_syntax_uid="1.2.840.10008.1.2.1")
            image.BurnedInAnnotation = "YES"
            image.ImageComments = f"{TASK_TITLES[task]}, {plane}: class activation map. {prediction.notice}"
            images.append(image)
    return images
