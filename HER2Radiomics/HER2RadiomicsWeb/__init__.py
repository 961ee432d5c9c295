"""Browser front end of the HER2Radiomics QA workflow (``her2radiomics web``), on trame-slicer.

trame-slicer (Kitware, Apache-2.0) runs Slicer's own MRML scene, slice views, segmentation display
and segment editor effects in a Python server and streams the views to a web page (trame, remote
controlled areas). This package adds no science: every step is ``HER2RadiomicsLib.logic``'s
(shells, exclusions, features, prediction) on the scene trame-slicer owns, and every decision goes
through the QA session core (``her2radiomics.qa``). Needs the optional extra ``pip install .[web]``;
nothing in ``her2radiomics`` imports this package.
"""
