"""The coded concepts the report uses: standard codes where DICOM PS3.16 lists one (as shipped in
pydicom's code dictionary, so every code here is checked against the standard's own tables), the
toolkit's private scheme `99MRNET` where none is listed.

SNOMED CT has concepts for an ACL tear and a meniscal tear, but they are not among the codes DICOM
lists, and this project cannot check a SNOMED CT release here; they stay in the private scheme
(with their English meaning) until someone maps them against a release. Private schemes start
with "99" (PS3.16 section 8) and are declared in the report's Coding Scheme Identification Sequence.
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

SCHEME = "99MRNET"
SCHEME_NAME = "mrnet-toolkit findings and measurements"

FINDING = {
    "abnormal": codes.SCT.Abnormal,  # 263654008
    "acl": Code("acl-tear", SCHEME, "Tear of anterior cruciate ligament"),
    "meniscus": Code("meniscal-tear", SCHEME, "Tear of meniscus of knee"),
}
FINDING_SITE = {
    "abnormal": codes.SCT.KneeJoint,  # 49076000
    "acl": codes.SCT.KneeJoint,  # the ligament's own structure code is not among DICOM's
    "meniscus": codes.SCT.Meniscus,  # 74135004
}
PLANE = {"axial": codes.SCT.Axial, "coronal": codes.SCT.Coronal, "sagittal": codes.SCT.Sagittal}

PROCEDURE = codes.LN.MRIUnspecifiedBodyRegion  # 25056-3, from CID 100; the finding sites say "knee"
PROBABILITY = codes.DCM.Probability  # 122157
THRESHOLD = codes.DCM.ThresholdValue  # 122411
NO_UNITS = codes.UCUM.NoUnits  # "1"
PRESENT, ABSENT = codes.SCT.Present, codes.SCT.Absent
PLANES_USED = Code("planes-used", SCHEME, "Planes used for the fused probability")


def plane_probability(plane: str) -> Code:
    # A code value is at most 16 characters (VR SH).
    return Code(f"prob-{plane}", SCHEME, f"Probability from the {plane} models")


def coding_scheme_identification():
    """The item that declares the private scheme in the SOP Common module."""
    from highdicom.coding_schemes import CodingSchemeIdentificationItem

    return CodingSchemeIdentificationItem(SCHEME, name=SCHEME_NAME, responsible_organization="mrnet-toolkit")
