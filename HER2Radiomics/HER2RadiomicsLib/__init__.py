"""Qt-free helpers of the HER2Radiomics Slicer module.

Everything here imports without Slicer's Qt (``qt``, ``ctk``, ``slicer.app``) so it runs headless on
slicer-core: ``mrml_bridge`` (MRML <-> SimpleITK geometry), ``logic`` (segments, shells, exclusions,
features, predictions, tables and charts), ``session`` (save / reload, audit record), ``runner``
(background feature extraction) and ``deps`` (runtime dependencies). ``HER2Radiomics.py`` is the thin
GUI shell over them.
"""
