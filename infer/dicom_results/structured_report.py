"""A prediction as a DICOM Structured Report (Comprehensive SR, TID 1500 "Imaging Measurement
Report", built with highdicom) that a PACS files under the source study, in a series of its own.

Per task, one measurement group (TID 1501): the finding (coded), its site, the fused probability,
the bundle's threshold, the decision (present/absent at that threshold), the planes used, the
probability of each plane's model with references to the images that plane's volume was made of,
and the algorithm (toolkit version, bundle version, manifest sha256). The series description and
the algorithm's parameters say "not for clinical use"; demo bundles say they are demo weights.
"""

from __future__ import annotations

from importlib.metadata import version

import highdicom as hd
from pydicom.uid import generate_uid

from ..predictor import Prediction
from ..registry import TASK_TITLES, TASKS
from . import codes
from .sources import SourceStudy

SERIES_DESCRIPTION = "MRNet RESEARCH - not for clinical use"
SR_SERIES_NUMBER = 9901
MANUFACTURER = "mrnet-toolkit"
# The device that made the observations: one UID for the toolkit, the same on every machine.
DEVICE_UID = generate_uid(entropy_srcs=["mrnet-toolkit", "observer device"])


def algorithm(prediction: Prediction) -> hd.sr.AlgorithmIdentification:
    """The toolkit and the bundle, exactly enough to find the models that said this again."""
    return hd.sr.AlgorithmIdentification(
        name="mrnet-toolkit MRNet knee classifiers", version=version("mrnet-toolkit"), manufacturer=MANUFACTURER,
        parameters=[f"bundle version {prediction.bundle_version}",
                    f"bundle manifest sha256 {prediction.bundle_sha256}",
                    f"precision {prediction.precision}", prediction.notice])


def _group(task: str, prediction: Prediction, source: SourceStudy,
           algorithm_id: hd.sr.AlgorithmIdentification) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    result = prediction.tasks[task]
    measurements = [
        hd.sr.Measurement(name=codes.PROBABILITY, value=result.probability, unit=codes.NO_UNITS),
        hd.sr.Measurement(name=codes.THRESHOLD, value=result.threshold, unit=codes.NO_UNITS),
    ]
    for plane in prediction.planes:
        images = source.planes[plane].images
        measurements.append(hd.sr.Measurement(
            name=codes.plane_probability(plane), value=prediction.plane_probabilities[plane][task],
            unit=codes.NO_UNITS,
            referenced_images=[hd.sr.SourceImageForMeasurement(
                image.sop_class, image.sop_instance, None if image.frame is None else [image.frame])
                for image in images]))
    evaluations = [hd.sr.QualitativeEvaluation(codes.FINDING[task], codes.PRESENT if result.decision else codes.ABSENT)]
    evaluations += [hd.sr.QualitativeEvaluation(codes.PLANES_USED, codes.PLANE[plane]) for plane in result.planes]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"MRNet {TASK_TITLES[task]}"),
        finding_type=codes.FINDING[task], finding_sites=[hd.sr.FindingSite(codes.FINDING_SITE[task])],
        algorithm_id=algorithm_id, measurements=measurements, qualitative_evaluations=evaluations)


def structured_report(prediction: Prediction, source: SourceStudy) -> hd.sr.ComprehensiveSR:
    """The SR for one exam's prediction, under the source study (patient and study identification
    copied from `source.header`)."""
    missing = [p for p in prediction.planes if p not in source.planes]
    if missing:
        raise ValueError(f"the prediction has planes {missing} that the source study does not")
    algorithm_id = algorithm(prediction)
    observer = hd.sr.ObserverContext(
        observer_type=codes.codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_UID, name="mrnet-toolkit", manufacturer_name=MANUFACTURER,
            model_name=f"bundle {prediction.bundle_version}"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.PROCEDURE,
        imaging_measurements=[_group(task, prediction, source, algorithm_id) for task in TASKS])
    sr = hd.sr.ComprehensiveSR(
        evidence=source.evidence(), content=report[0], series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        # The notice travels where every PACS shows it (the series) and in Content Qualification.
        series_description=SERIES_DESCRIPTION, content_qualification=hd.ContentQualificationValues.RESEARCH,
        coding_schemes=[codes.coding_scheme_identification()], manufacturer_model_name="mrnet-toolkit",
        software_versions=version("mrnet-toolkit"))
    return sr


