"""HER2Radiomics core: Qt-free regions, features, models, statistics, prediction and reports.

Research software. The shipped demo models are trained on synthetic phantom data and are
NOT FOR CLINICAL USE.
"""

__version__ = "0.1.0"

NOT_FOR_CLINICAL_USE = "Research software: not for clinical use."
DEMO_MODEL_NOTICE = "Synthetic demonstration model, not for clinical use."
